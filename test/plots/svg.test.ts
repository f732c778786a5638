/** The tiny SVG plots: well-formed, deterministic, escaped, with bars/paths where the data says. */
import { describe, expect, it } from "vitest"
import { histogramSvg, lineChartSvg, niceTicks } from "../../src/plots/svg.ts"

describe("SVG plots", () => {
  it("draws a histogram with one bar per non-empty bin and series, deterministically", () => {
    const a = histogramSvg([{ name: "English <en>", values: [1, 2, 2, 3, 10] }, { name: "Khmer", values: [5, 5, 30] }], {
      title: "Tokens & sentences",
      xLabel: "tokens",
      binWidth: 5,
      maxX: 20
    })
    expect(a).toBe(
      histogramSvg([{ name: "English <en>", values: [1, 2, 2, 3, 10] }, { name: "Khmer", values: [5, 5, 30] }], {
        title: "Tokens & sentences",
        xLabel: "tokens",
        binWidth: 5,
        maxX: 20
      })
    )
    expect(a.startsWith("<svg xmlns=\"http://www.w3.org/2000/svg\"")).toBe(true)
    expect(a.trimEnd().endsWith("</svg>")).toBe(true)
    expect(a).toContain("Tokens &amp; sentences")
    expect(a).toContain("English &lt;en&gt;")
    // English: bins [0,5) ×4 and [10,15) ×1; Khmer: [5,10) ×2 and 30 clamped into the last bin [15,20)
    const bars = [...a.matchAll(/<rect class="bar" x="[\d.]+" y="[\d.]+" width="[\d.]+" height="([\d.]+)" fill="#/g)]
    expect(bars).toHaveLength(4)
    const heights = bars.map((m) => Number(m[1]))
    expect(Math.max(...heights)).toBeCloseTo(heights[0]) // the bar with 4 values is the tallest
    expect(heights[0] / heights[1]).toBeCloseTo(4)
  })

  it("draws a line chart, optionally with a log y axis", () => {
    const svg = lineChartSvg([{ name: "loss", points: [[0, 10], [1, 5], [2, 1], [3, 0.5]] }], {
      title: "Loss",
      xLabel: "step",
      yLabel: "loss",
      logY: true
    })
    expect(svg).toMatch(/<path d="M[\d.]+,[\d.]+ L[\d.]+,[\d.]+ L[\d.]+,[\d.]+ L[\d.]+,[\d.]+"/)
    expect(svg).toContain(">10<")
    expect(niceTicks(0, 100)).toEqual([0, 20, 40, 60, 80, 100])
  })
})
