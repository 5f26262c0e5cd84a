import AlloyCLI

// The executable is only this: the commands live in the AlloyCLI library, where the tests run
// them in-process.
Alloy.main()
