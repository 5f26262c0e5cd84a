import AlloyCLI
import Tensors

// The executable is only this: the commands live in the AlloyCLI library, where the tests run
// them in-process.
GEMM.quietThreads()
Alloy.main()
