/**
 * TMX translation memories (plain, compressed, or inside a zip), read as a stream: only the unit being parsed and
 * one chunk are held in memory, so a multi-gigabyte TMX is fine.
 *
 * `<tu><tuv xml:lang="en"><seg>…</seg></tuv><tuv xml:lang="km"><seg>…</seg></tuv></tu>`: language codes match by
 * primary subtag, case-insensitively (`en`, `en-US`, `EN`, `eng`; TMX 1.1's `lang` attribute is accepted too).
 * Inside `<seg>`: entities (`&lt;`, `&#6016;`, `&#x1780;`, ...) are decoded, CDATA is taken literally, inline
 * native-code elements (`<bpt>`, `<ept>`, `<ph>`, `<it>`, `<ut>`) are dropped with their content, and other inline
 * tags (`<hi>`, `<g>`, ...) are dropped keeping their text. UTF-16 files (with a BOM) are decoded as such.
 *
 * A unit lacking a side is quarantined as `tmx-missing-side`, a malformed one (no `<seg>`, an unclosed `<tuv>`,
 * stray markup, a `<tu>` opened inside another) as `tmx-unparsable`. A file that is not TMX at all (no `<tmx>` root
 * before the first unit) or that ends inside a unit or before `</tmx>` fails with an `InputFileError` and the line.
 */
import { TextDecoder } from "node:util"
import { InputFileError } from "../../pipeline/errors.ts"
import type { ByteSource } from "../bytes.ts"
import { sameLang } from "../../text/unicode.ts"
import { checkSides, type QuarantineReason, quarantine, type RecordBatch, type ReaderOptions, rawPair } from "./records.ts"

const NATIVE_CODE = /<(bpt|ept|ph|it|ut)\b[^>]*>[\s\S]*?<\/\1\s*>/g
const NATIVE_EMPTY = /<(?:bpt|ept|ph|it|ut)\b[^>]*\/>/g
const ANY_TAG = /<\/?[A-Za-z][\w:.-]*(?:\s[^<>]*)?\/?>/g
const ENTITY = /&(#[xX][0-9a-fA-F]+|#[0-9]+|[A-Za-z][A-Za-z0-9]*);/g
const NAMED: Readonly<Record<string, string>> = { lt: "<", gt: ">", amp: "&", quot: '"', apos: "'", nbsp: "\u00A0" }

const decodeEntities = (s: string): string =>
  s.includes("&")
    ? s.replace(ENTITY, (whole: string, body: string) => {
      if (body.startsWith("#")) {
        const cp = body[1] === "x" || body[1] === "X" ? parseInt(body.slice(2), 16) : parseInt(body.slice(1), 10)
        return Number.isFinite(cp) && cp >= 0 && cp <= 0x10ffff ? String.fromCodePoint(cp) : whole
      }
      return NAMED[body] ?? whole
    })
    : s

/** The text of a `<seg>` body, or undefined when its markup cannot be understood. */
export const segText = (inner: string): string | undefined => {
  let out = ""
  let pos = 0
  while (pos < inner.length) {
    const cdata = inner.indexOf("<![CDATA[", pos)
    const part = cdata < 0 ? inner.slice(pos) : inner.slice(pos, cdata)
    const stripped = part.replace(NATIVE_CODE, "").replace(NATIVE_EMPTY, "").replace(ANY_TAG, "")
    if (stripped.includes("<") || stripped.includes(">")) return undefined
    out += decodeEntities(stripped)
    if (cdata < 0) break
    const end = inner.indexOf("]]>", cdata + 9)
    if (end < 0) return undefined
    out += inner.slice(cdata + 9, end)
    pos = end + 3
  }
  return out
}

const LANG_ATTR = /(?:^|\s)(?:xml:)?lang\s*=\s*(?:"([^"]*)"|'([^']*)')/
const TUV = /<tuv\b([^>]*)>([\s\S]*?)<\/tuv\s*>/g
const SEG = /<seg\b[^>]*>([\s\S]*?)<\/seg\s*>/
const TUV_OPEN = /<tuv\b/g

type Unit = { readonly english: string; readonly foreign: string } | { readonly reason: QuarantineReason }

/** Parses one `<tu>…</tu>` element. */
export const parseUnit = (unit: string, options: ReaderOptions): Unit => {
  let english: string | undefined
  let foreign: string | undefined
  let matched = 0
  for (const m of unit.matchAll(TUV)) {
    matched++
    const attrs = m[1]
    const lm = LANG_ATTR.exec(attrs)
    const lang = lm === null ? undefined : (lm[1] ?? lm[2])
    if (lang === undefined) return { reason: "tmx-unparsable" }
    const seg = SEG.exec(m[2])
    if (seg === null) return { reason: "tmx-unparsable" }
    const text = segText(seg[1])
    if (text === undefined) return { reason: "tmx-unparsable" }
    if (english === undefined && sameLang(lang, options.englishLang)) english = text
    else if (foreign === undefined && sameLang(lang, options.foreignLang)) foreign = text
  }
  const opened = unit.match(TUV_OPEN)?.length ?? 0
  if (opened !== matched) return { reason: "tmx-unparsable" }
  if (english === undefined || foreign === undefined) return { reason: "tmx-missing-side" }
  const bad = checkSides(english, foreign)
  if (bad !== undefined) return { reason: bad }
  return { english, foreign }
}

const OUTSIDE = /<!--|<!\[CDATA\[|<tu(?=[\s>])|<\/tmx\s*>/g
const INSIDE = /<!--|<!\[CDATA\[|<tu(?=[\s>])|<\/tu\s*>/g
const TMX_ROOT = /<tmx(?=[\s>])/
/** How much text may come before the `<tmx>` root before the file is judged not to be TMX. */
const HEADER_LIMIT = 1 << 20

const pickDecoder = (head: Uint8Array): TextDecoder => {
  if (head.length >= 2 && head[0] === 0xff && head[1] === 0xfe) return new TextDecoder("utf-16le")
  if (head.length >= 2 && head[0] === 0xfe && head[1] === 0xff) return new TextDecoder("utf-16be")
  return new TextDecoder("utf-8")
}

export async function* readTmx(source: ByteSource, options: ReaderOptions): AsyncGenerator<RecordBatch> {
  let decoder: TextDecoder | undefined
  let buf = ""
  // line bookkeeping: `lineAtMark` is the line number at buf offset `mark`
  let mark = 0
  let lineAtMark = 1
  const lineAt = (pos: number): number => {
    for (let i = buf.indexOf("\n", mark); i >= 0 && i < pos; i = buf.indexOf("\n", i + 1)) lineAtMark++
    mark = pos
    return lineAtMark
  }
  let sawRoot = false
  let sawEnd = false
  let units = 0

  const notTmx = (why: string) =>
    new InputFileError({ file: source.file, message: `${source.label} is not a TMX file: ${why}`, line: lineAt(Math.min(buf.length, mark)) })

  /** Consumes complete units from `buf`; returns the batch. Throws on a structural error. */
  const drain = (final: boolean): RecordBatch => {
    const batch: RecordBatch = { pairs: [], bad: [] }
    let pos = 0
    if (!sawRoot) {
      const first = buf.trimStart()
      if (first.length > 0 && !first.startsWith("<")) {
        throw notTmx(`it starts with ${JSON.stringify(first.slice(0, 40))}`)
      }
      const root = TMX_ROOT.exec(buf)
      const firstTu = /<tu(?=[\s>])/.exec(buf)
      if (root === null || (firstTu !== null && firstTu.index < root.index)) {
        if (firstTu !== null || final || buf.length > HEADER_LIMIT) throw notTmx("no <tmx> root element before the first unit")
        return batch
      }
      sawRoot = true
      pos = root.index
    }
    while (true) {
      OUTSIDE.lastIndex = pos
      const m = OUTSIDE.exec(buf)
      if (m === null) {
        // keep a short tail: a token may be split across chunks
        pos = Math.max(pos, buf.length - 16)
        break
      }
      if (m[0] === "<!--" || m[0] === "<![CDATA[") {
        const close = buf.indexOf(m[0] === "<!--" ? "-->" : "]]>", m.index + m[0].length)
        if (close < 0) {
          pos = m.index
          break
        }
        pos = close + 3
        continue
      }
      if (m[0] !== "<tu") {
        sawEnd = true
        pos = m.index + m[0].length
        continue
      }
      // a unit: find its end, skipping comments and CDATA
      const start = m.index
      let scan = start + 3
      let end = -1
      let broken = -1
      let incomplete = false
      while (true) {
        INSIDE.lastIndex = scan
        const t = INSIDE.exec(buf)
        if (t === null) {
          incomplete = true
          break
        }
        if (t[0] === "<!--" || t[0] === "<![CDATA[") {
          const close = buf.indexOf(t[0] === "<!--" ? "-->" : "]]>", t.index + t[0].length)
          if (close < 0) {
            incomplete = true
            break
          }
          scan = close + 3
          continue
        }
        if (t[0] === "<tu") {
          broken = t.index
          break
        }
        end = t.index + t[0].length
        break
      }
      if (incomplete) {
        if (final) {
          throw new InputFileError({
            file: source.file,
            message: `${source.label}: truncated TMX: the unit opened at line ${lineAt(start)} is never closed with </tu>`,
            line: lineAt(start)
          })
        }
        pos = start
        break
      }
      const line = lineAt(start)
      units++
      if (broken >= 0) {
        batch.bad.push(quarantine(source, line, "tmx-unparsable", buf.slice(start, broken)))
        pos = broken
        continue
      }
      const text = buf.slice(start, end)
      const parsed = parseUnit(text, options)
      if ("reason" in parsed) batch.bad.push(quarantine(source, line, parsed.reason, text))
      else batch.pairs.push(rawPair(parsed.english, parsed.foreign, `${source.label}:${line}`, null))
      pos = end
    }
    lineAt(pos)
    buf = buf.slice(pos)
    mark = 0
    return batch
  }

  for await (const chunk of source.open()) {
    decoder ??= pickDecoder(chunk)
    buf += decoder.decode(chunk, { stream: true })
    const batch = drain(false)
    if (batch.pairs.length > 0 || batch.bad.length > 0) yield batch
  }
  buf += (decoder ?? new TextDecoder("utf-8")).decode()
  const last = drain(true)
  if (last.pairs.length > 0 || last.bad.length > 0) yield last
  if (!sawRoot) throw notTmx("no <tmx> root element")
  if (!sawEnd) {
    throw new InputFileError({
      file: source.file,
      message: `${source.label}: truncated TMX: no closing </tmx> after ${units} units (line ${lineAtMark})`,
      line: lineAtMark
    })
  }
}
