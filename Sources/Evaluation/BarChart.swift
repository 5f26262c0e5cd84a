import Foundation

/// Minimal SVG charts for reports (no plotting dependency): bars with interval whiskers, pairs
/// of horizontal bars per row, and lines over a swept parameter. The one place SVG is drawn.
public enum Chart {
    static func esc(_ s: String) -> String { s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;") }

    /// Vertical bars (values in [0, 1]) with 95% intervals.
    public static func bars(title: String, _ bars: [(label: String, value: Double, low: Double, high: Double)]) -> String {
        let w = max(360, 90 * bars.count + 80), h = 320, left = 50, bottom = 250, top = 40
        func y(_ v: Double) -> Double { Double(bottom) - v * Double(bottom - top) }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(w)\" height=\"\(h)\" font-family=\"sans-serif\" font-size=\"11\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/><text x=\"\(left)\" y=\"22\" font-size=\"14\" font-weight=\"bold\">\(esc(title))</text>\n"
        for t in stride(from: 0.0, through: 1.0, by: 0.2) {
            s += String(format: "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/><text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" fill=\"#555\">%.0f</text>\n",
                        left, w - 20, y(t), y(t), left - 6, y(t) + 4, t * 100)
        }
        for (i, b) in bars.enumerated() {
            let x = left + 20 + i * 90
            s += String(format: "<rect x=\"%d\" y=\"%.1f\" width=\"50\" height=\"%.1f\" fill=\"#4C72B0\"/>\n", x, y(b.value), Double(bottom) - y(b.value))
            s += String(format: "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n", x + 25, x + 25, y(b.low), y(b.high))
            s += String(format: "<text x=\"%d\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"10\">%.1f</text>\n", x + 25, y(b.high) - 4, b.value * 100)
            s += "<text x=\"\(x + 25)\" y=\"\(bottom + 14)\" text-anchor=\"end\" transform=\"rotate(-30 \(x + 25) \(bottom + 14))\">\(esc(b.label))</text>\n"
        }
        return s + "</svg>\n"
    }

    /// Lines of (x, y) series, y in [0, 1].
    public static func lines(title: String, xLabel: String, _ series: [(name: String, points: [(Double, Double)])]) -> String {
        let w = 560, h = 340, left = 50, right = 150, top = 40, bottom = 280
        let xs = series.flatMap { $0.points.map(\.0) }, ys = series.flatMap { $0.points.map(\.1) }
        let x0 = xs.min() ?? 0, x1 = max((xs.max() ?? 1), x0 + 1e-9)
        let y0 = max(0, ((ys.min() ?? 0) * 10).rounded(.down) / 10), y1 = min(1, ((ys.max() ?? 1) * 10).rounded(.up) / 10 + 1e-9)
        func px(_ v: Double) -> Double { Double(left) + (v - x0) / (x1 - x0) * Double(w - left - right) }
        func py(_ v: Double) -> Double { Double(bottom) - (v - y0) / (y1 - y0) * Double(bottom - top) }
        let colors = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860"]
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(w)\" height=\"\(h)\" font-family=\"sans-serif\" font-size=\"11\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/><text x=\"\(left)\" y=\"22\" font-size=\"14\" font-weight=\"bold\">\(esc(title))</text>\n"
        var t = y0
        while t <= y1 + 1e-9 {
            s += String(format: "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/><text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" fill=\"#555\">%.0f</text>\n",
                        left, w - right, py(t), py(t), left - 6, py(t) + 4, t * 100)
            t += 0.05
        }
        for v in Set(xs).sorted() {
            s += String(format: "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"#555\">%g</text>\n", px(v), bottom + 16, v)
        }
        s += "<text x=\"\((left + w - right) / 2)\" y=\"\(bottom + 34)\" text-anchor=\"middle\">\(esc(xLabel))</text>\n"
        for (k, sr) in series.enumerated() {
            let c = colors[k % colors.count]
            s += "<polyline fill=\"none\" stroke=\"\(c)\" stroke-width=\"2\" points=\"" + sr.points.map { String(format: "%.1f,%.1f", px($0.0), py($0.1)) }.joined(separator: " ") + "\"/>\n"
            for p in sr.points { s += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%@\"/>\n", px(p.0), py(p.1), c) }
            s += "<rect x=\"\(w - right + 10)\" y=\"\(top + 16 * k)\" width=\"10\" height=\"10\" fill=\"\(c)\"/><text x=\"\(w - right + 24)\" y=\"\(top + 9 + 16 * k)\">\(esc(sr.name))</text>\n"
        }
        return s + "</svg>\n"
    }

    /// Horizontal bars, two per row (values in [0, 1]; nil draws no bar), with a legend for the
    /// two series: what the fusion table's averages look like.
    public static func pairedBars(title: String, legend: (String, String), _ rows: [(label: String, first: Double?, second: Double?)]) -> String {
        let rowH = 26, left = 220, width = 760, top = 50
        let h = top + rows.count * rowH + 40
        let plotW = width - left - 60
        let values = rows.flatMap { [$0.first, $0.second].compactMap { $0 } }
        let lo = max(0, ((values.min() ?? 0) * 10).rounded(.down) / 10 - 0.1), hi = 1.0
        func x(_ v: Double) -> Double { Double(left) + (v - lo) / (hi - lo) * Double(plotW) }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(h)\" font-family=\"sans-serif\" font-size=\"12\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"\(left)\" y=\"20\" font-size=\"14\" font-weight=\"bold\">\(title)</text>\n"
        s += "<rect x=\"\(left)\" y=\"28\" width=\"10\" height=\"10\" fill=\"#4C72B0\"/><text x=\"\(left + 14)\" y=\"37\">\(esc(legend.0))</text>\n"
        s += "<rect x=\"\(left + 200)\" y=\"28\" width=\"10\" height=\"10\" fill=\"#DD8452\"/><text x=\"\(left + 214)\" y=\"37\">\(esc(legend.1))</text>\n"
        var t = lo
        while t <= hi + 1e-9 {
            s += String(format: "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%d\" stroke=\"#ddd\"/><text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"#555\">%.0f</text>\n",
                        x(t), x(t), top - 4, top + rows.count * rowH, x(t), top + rows.count * rowH + 16, t * 100)
            t += 0.1
        }
        for (i, r) in rows.enumerated() {
            let y = top + i * rowH
            s += "<text x=\"\(left - 8)\" y=\"\(y + 16)\" text-anchor=\"end\">\(esc(r.label))</text>\n"
            for (k, v) in [r.first, r.second].enumerated() {
                guard let v else { continue }
                s += String(format: "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"10\" fill=\"%@\"/><text x=\"%.1f\" y=\"%d\" fill=\"#333\" font-size=\"10\">%.1f</text>\n",
                            left, y + 3 + k * 11, max(0, x(v) - Double(left)), k == 0 ? "#4C72B0" : "#DD8452", x(v) + 3, y + 12 + k * 11, v * 100)
            }
        }
        return s + "</svg>\n"
    }
}
