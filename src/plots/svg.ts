/**
 * Tiny dependency-free SVG plots for reports: a histogram (one or more overlaid series sharing bins) and a line
 * chart. Each returns a complete standalone `<svg>` document as a string; text is XML-escaped; output depends only
 * on the input (no randomness, no dates), so the files are reproducible byte for byte.
 */

export interface HistogramSeries {
  readonly name: string
  readonly values: ArrayLike<number>
}

export interface HistogramOptions {
  readonly title: string
  readonly xLabel: string
  readonly yLabel?: string
  /** Width of a bin in x units; default: chosen from the data (about 30 bins). */
  readonly binWidth?: number
  /** Right end of the x axis; larger values are counted in the last bin. Default: the data's maximum. */
  readonly maxX?: number
  readonly width?: number
  readonly height?: number
}

export interface LineSeries {
  readonly name: string
  readonly points: ReadonlyArray<readonly [number, number]>
}

export interface LineChartOptions {
  readonly title: string
  readonly xLabel: string
  readonly yLabel: string
  /** Logarithmic y axis (values ≤ 0 are left out). */
  readonly logY?: boolean
  readonly width?: number
  readonly height?: number
}

const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
const MARGIN = { left: 64, right: 20, top: 40, bottom: 52 }

export const escapeXml = (s: string): string =>
  s.replace(/[&<>"']/g, (c) => (c === "&" ? "&amp;" : c === "<" ? "&lt;" : c === ">" ? "&gt;" : c === '"' ? "&quot;" : "&apos;"))

/** A number printed briefly: 1234 → "1,234", 0.1234 → "0.123", 1.5e6 → "1.5M". */
export const formatTick = (v: number): string => {
  const a = Math.abs(v)
  if (a >= 1e6) return `${+(v / 1e6).toFixed(2)}M`
  if (a >= 1e4) return `${+(v / 1e3).toFixed(1)}k`
  if (Number.isInteger(v)) return v.toLocaleString("en-US")
  if (a >= 1) return `${+v.toFixed(2)}`
  return `${+v.toPrecision(3)}`
}

/** About `count` round tick values covering [lo, hi]. */
export const niceTicks = (lo: number, hi: number, count = 5): Array<number> => {
  if (!(hi > lo)) return [lo]
  const raw = (hi - lo) / count
  const mag = 10 ** Math.floor(Math.log10(raw))
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag
  const ticks: Array<number> = []
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(+t.toPrecision(12))
  return ticks
}

const f = (v: number): string => (Math.round(v * 100) / 100).toString()

const frame = (width: number, height: number, title: string, body: ReadonlyArray<string>): string =>
  [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
    `font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${f(width / 2)}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(title)}</text>`,
    ...body,
    "</svg>",
    ""
  ].join("\n")

const axes = (
  width: number,
  height: number,
  xTicks: ReadonlyArray<{ readonly at: number; readonly label: string }>,
  yTicks: ReadonlyArray<{ readonly at: number; readonly label: string }>,
  xLabel: string,
  yLabel: string
): Array<string> => {
  const x0 = MARGIN.left
  const y0 = height - MARGIN.bottom
  const out = [
    `<line x1="${x0}" y1="${y0}" x2="${width - MARGIN.right}" y2="${y0}" stroke="black"/>`,
    `<line x1="${x0}" y1="${MARGIN.top}" x2="${x0}" y2="${y0}" stroke="black"/>`
  ]
  for (const t of xTicks) {
    out.push(`<line x1="${f(t.at)}" y1="${y0}" x2="${f(t.at)}" y2="${y0 + 5}" stroke="black"/>`)
    out.push(`<text x="${f(t.at)}" y="${y0 + 18}" text-anchor="middle">${escapeXml(t.label)}</text>`)
  }
  for (const t of yTicks) {
    out.push(`<line x1="${x0 - 5}" y1="${f(t.at)}" x2="${x0}" y2="${f(t.at)}" stroke="black"/>`)
    out.push(`<line x1="${x0}" y1="${f(t.at)}" x2="${width - MARGIN.right}" y2="${f(t.at)}" stroke="#e5e5e5"/>`)
    out.push(`<text x="${x0 - 8}" y="${f(t.at + 4)}" text-anchor="end">${escapeXml(t.label)}</text>`)
  }
  out.push(`<text x="${f((x0 + width - MARGIN.right) / 2)}" y="${height - 12}" text-anchor="middle">${escapeXml(xLabel)}</text>`)
  const midY = (MARGIN.top + y0) / 2
  out.push(`<text x="16" y="${f(midY)}" text-anchor="middle" transform="rotate(-90 16 ${f(midY)})">${escapeXml(yLabel)}</text>`)
  return out
}

const legend = (width: number, names: ReadonlyArray<string>): Array<string> =>
  names.flatMap((name, i) => {
    const y = MARGIN.top + 8 + i * 18
    const x = width - MARGIN.right - 150
    return [
      `<rect x="${x}" y="${y - 9}" width="12" height="12" fill="${PALETTE[i % PALETTE.length]}" fill-opacity="0.6"/>`,
      `<text x="${x + 18}" y="${y + 1}">${escapeXml(name)}</text>`
    ]
  })

/** Histogram of one or more series on shared bins (bars overlaid, semi-transparent). */
export const histogramSvg = (series: ReadonlyArray<HistogramSeries>, options: HistogramOptions): string => {
  const width = options.width ?? 720
  const height = options.height ?? 400
  let dataMax = 0
  let dataMin = Infinity
  for (const s of series) {
    for (let i = 0; i < s.values.length; i++) {
      const v = s.values[i]
      if (!Number.isFinite(v)) continue
      if (v > dataMax) dataMax = v
      if (v < dataMin) dataMin = v
    }
  }
  const lo = Number.isFinite(dataMin) ? Math.min(0, dataMin) : 0
  const maxX = Math.max(options.maxX ?? dataMax, lo + 1)
  const binWidth = options.binWidth ?? Math.max(1, Math.ceil((maxX - lo) / 30))
  const bins = Math.max(1, Math.ceil((maxX - lo) / binWidth))
  const counts = series.map((s) => {
    const c = new Array<number>(bins).fill(0)
    for (let i = 0; i < s.values.length; i++) {
      const v = s.values[i]
      if (!Number.isFinite(v)) continue
      c[Math.min(bins - 1, Math.max(0, Math.floor((v - lo) / binWidth)))]++
    }
    return c
  })
  const maxCount = Math.max(1, ...counts.flat()) * 1.05 // a little headroom above the tallest bar
  const plotW = width - MARGIN.left - MARGIN.right
  const plotH = height - MARGIN.top - MARGIN.bottom
  const xAt = (v: number) => MARGIN.left + ((v - lo) / (bins * binWidth)) * plotW
  const yAt = (c: number) => height - MARGIN.bottom - (c / maxCount) * plotH
  const body: Array<string> = []
  counts.forEach((c, si) => {
    const color = PALETTE[si % PALETTE.length]
    c.forEach((n, b) => {
      if (n === 0) return
      const x = xAt(lo + b * binWidth)
      const w = Math.max(0.5, xAt(lo + (b + 1) * binWidth) - x - 1)
      body.push(`<rect class="bar" x="${f(x)}" y="${f(yAt(n))}" width="${f(w)}" height="${f(yAt(0) - yAt(n))}" fill="${color}" fill-opacity="0.55"/>`)
    })
  })
  const xTicks = niceTicks(lo, lo + bins * binWidth).map((t) => ({ at: xAt(t), label: formatTick(t) }))
  const yTicks = niceTicks(0, maxCount).map((t) => ({ at: yAt(t), label: formatTick(t) }))
  return frame(width, height, options.title, [
    ...axes(width, height, xTicks, yTicks, options.xLabel, options.yLabel ?? "count"),
    ...body,
    ...legend(width, series.map((s) => s.name))
  ])
}

/** Line chart of one or more series of (x, y) points. */
export const lineChartSvg = (series: ReadonlyArray<LineSeries>, options: LineChartOptions): string => {
  const width = options.width ?? 720
  const height = options.height ?? 400
  const logY = options.logY === true
  const pts = series.map((s) => s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!logY || y > 0)))
  const xs = pts.flat().map(([x]) => x)
  const ys = pts.flat().map(([, y]) => (logY ? Math.log10(y) : y))
  let xLo = xs.length > 0 ? Math.min(...xs) : 0
  let xHi = xs.length > 0 ? Math.max(...xs) : 1
  let yLo = ys.length > 0 ? Math.min(...ys) : 0
  let yHi = ys.length > 0 ? Math.max(...ys) : 1
  if (xHi === xLo) {
    xLo -= 1
    xHi += 1
  }
  if (yHi === yLo) {
    yLo -= 1
    yHi += 1
  }
  const pad = (yHi - yLo) * 0.05
  yLo -= pad
  yHi += pad
  const plotW = width - MARGIN.left - MARGIN.right
  const plotH = height - MARGIN.top - MARGIN.bottom
  const xAt = (x: number) => MARGIN.left + ((x - xLo) / (xHi - xLo)) * plotW
  const yAt = (y: number) => height - MARGIN.bottom - ((y - yLo) / (yHi - yLo)) * plotH
  const body = pts.map((p, si) => {
    const color = PALETTE[si % PALETTE.length]
    const d = p.map(([x, y], k) => `${k === 0 ? "M" : "L"}${f(xAt(x))},${f(yAt(logY ? Math.log10(y) : y))}`).join(" ")
    return p.length === 1
      ? `<circle cx="${f(xAt(p[0][0]))}" cy="${f(yAt(logY ? Math.log10(p[0][1]) : p[0][1]))}" r="3" fill="${color}"/>`
      : `<path d="${d}" fill="none" stroke="${color}" stroke-width="1.8"/>`
  })
  const xTicks = niceTicks(xLo, xHi).map((t) => ({ at: xAt(t), label: formatTick(t) }))
  const yTicks = logY
    ? niceTicks(Math.ceil(yLo), Math.floor(yHi)).filter(Number.isInteger).map((t) => ({ at: yAt(t), label: formatTick(10 ** t) }))
    : niceTicks(yLo, yHi).map((t) => ({ at: yAt(t), label: formatTick(t) }))
  return frame(width, height, options.title, [
    ...axes(width, height, xTicks, yTicks, options.xLabel, options.yLabel),
    ...body,
    ...legend(width, series.map((s) => s.name))
  ])
}

export interface BarGroup {
  /** The group's label on the x axis (a task type). */
  readonly label: string
  /** One value per series (NaN: no bar), in the order of `series`. */
  readonly values: ReadonlyArray<number>
  /** Optional [lo, hi] error bar per series. */
  readonly intervals?: ReadonlyArray<readonly [number, number] | null>
}

/** Grouped bar chart: one group per label, one bar per series (systems), with optional error bars. */
export const barChartSvg = (
  series: ReadonlyArray<string>,
  groups: ReadonlyArray<BarGroup>,
  options: { readonly title: string; readonly yLabel: string; readonly maxY?: number; readonly width?: number; readonly height?: number }
): string => {
  const width = options.width ?? 720
  const height = options.height ?? 400
  const values = groups.flatMap((g) => [...g.values, ...(g.intervals ?? []).flatMap((i) => (i === null ? [] : [i[1]]))]).filter(Number.isFinite)
  const maxY = options.maxY ?? Math.max(1, ...values) * 1.05
  const plotW = width - MARGIN.left - MARGIN.right - 160
  const plotH = height - MARGIN.top - MARGIN.bottom
  const groupW = plotW / Math.max(1, groups.length)
  const barW = (groupW * 0.8) / Math.max(1, series.length)
  const yAt = (v: number) => height - MARGIN.bottom - (Math.max(0, Math.min(v, maxY)) / maxY) * plotH
  const body: Array<string> = []
  const xTicks: Array<{ at: number; label: string }> = []
  groups.forEach((g, gi) => {
    const gx = MARGIN.left + gi * groupW + groupW * 0.1
    xTicks.push({ at: MARGIN.left + gi * groupW + groupW / 2, label: g.label })
    g.values.forEach((v, si) => {
      if (!Number.isFinite(v)) return
      const x = gx + si * barW
      body.push(`<rect class="bar" x="${f(x)}" y="${f(yAt(v))}" width="${f(Math.max(0.5, barW - 1))}" height="${f(yAt(0) - yAt(v))}" fill="${PALETTE[si % PALETTE.length]}" fill-opacity="0.7"/>`)
      const iv = g.intervals?.[si]
      if (iv !== undefined && iv !== null) {
        const cx = x + barW / 2
        body.push(`<line x1="${f(cx)}" y1="${f(yAt(iv[0]))}" x2="${f(cx)}" y2="${f(yAt(iv[1]))}" stroke="#222"/>`)
      }
    })
  })
  const yTicks = niceTicks(0, maxY).map((t) => ({ at: yAt(t), label: formatTick(t) }))
  return frame(width, height, options.title, [...axes(width, height, xTicks, yTicks, "", options.yLabel), ...body, ...legend(width, series)])
}
