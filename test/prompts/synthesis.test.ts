/** Stage B synthesis: prompts, reply parsing, rows, filters, and the offline template synthesizer. */
import * as fs from "node:fs"
import * as path from "node:path"
import { Schema } from "effect"
import { describe, expect, it } from "vitest"
import {
  buildSynthesisMessages,
  capitalisedRuns,
  checkRow,
  CODE_INSTRUCTIONS,
  firstClause,
  FOREIGN_EMB,
  offlineRow,
  parseSynthesisReply,
  rowFromReply,
  splitItems,
  StageBRow,
  stageBInput,
  TaskType
} from "../../src/prompts/synthesis.ts"
import { skipFor } from "../support/envGate.ts"

const KM = "រោងចក្រនេះផលិតថាមពល ៥ មេហ្គាវ៉ាត់"
const EN = "The plant, built by EDC in 2019, produces 5 MW of power and employs 120 people."

describe("synthesis prompt", () => {
  it("conditions on the reference English and asks for the task's JSON shape", () => {
    const [system, user] = buildSynthesisMessages({ taskType: "summarize_in_english", foreign: KM, english: EN })
    expect(system.content).toContain("ground truth")
    expect(user.content).toContain(`Khmer text:\n${KM}`)
    expect(user.content).toContain(`Reference English translation:\n${EN}`)
    expect(user.content).toContain('{"instruction": "...", "answer": "..."}')
    const qa = buildSynthesisMessages({ taskType: "qa_about_text", foreign: KM, english: EN, language: "Lao" })
    expect(qa[1].content).toContain('{"question": "...", "answer": "..."}')
    expect(qa[1].content).toContain("Lao text:")
  })

  it("knows the paper's and the code's task types", () => {
    expect(TaskType.literals).toEqual([
      "translate_to_english",
      "summarize_in_english",
      "bullet_pointify",
      "qa_about_text",
      "paraphrase_in_english",
      "title_generation",
      "extract_main_points",
      "executive_summary",
      "extract_key_fields"
    ])
    expect(stageBInput("Translate the foreign text to English.")).toBe(
      "Instruction: Translate the foreign text to English.\nForeign: <foreign><foreign_emb></foreign>\nAnswer in English only."
    )
  })
})

describe("parseSynthesisReply", () => {
  it("accepts a bare object or a fenced ```json block and trims fields", () => {
    expect(parseSynthesisReply("translate_to_english", ' {"instruction": " Translate it. ", "answer": "Hello."} ')).toEqual({
      _tag: "ok",
      instruction: "Translate it.",
      answer: "Hello."
    })
    const fenced = 'Here you go:\n```json\n{"instruction": "Summarize it.", "answer": "A plant.", "notes": 1}\n```\nThanks'
    expect(parseSynthesisReply("summarize_in_english", fenced)).toEqual({ _tag: "ok", instruction: "Summarize it.", answer: "A plant." })
    const bareFence = '```\n{"question": "How much power?", "answer": "5 MW."}\n```'
    expect(parseSynthesisReply("qa_about_text", bareFence)).toEqual({ _tag: "ok", instruction: "How much power?", answer: "5 MW." })
  })

  it("rejects anything else with a reason", () => {
    const reason = (task: TaskType, text: string, english?: string) => {
      const r = parseSynthesisReply(task, text, english)
      return r._tag === "invalid" ? r.reason : "ok"
    }
    expect(reason("translate_to_english", "Sure! The translation is: hello")).toContain("not a JSON object")
    expect(reason("translate_to_english", '{"instruction": "x", "answer": }')).toContain("not valid JSON")
    expect(reason("qa_about_text", '{"instruction": "x", "answer": "y"}')).toContain('"question"')
    expect(reason("translate_to_english", '{"question": "x", "answer": "y"}')).toContain('"instruction"')
    expect(reason("translate_to_english", '{"instruction": "x", "answer": "  "}')).toBe("empty answer")
    expect(reason("translate_to_english", '{"instruction": "", "answer": "y"}')).toBe("empty instruction")
    expect(reason("translate_to_english", '{"instruction": 3, "answer": "y"}')).toContain('"instruction"')
    expect(reason("translate_to_english", '```json\n[1, 2]\n```')).toContain("fenced block is not a JSON object")
    expect(reason("translate_to_english", `{"instruction": "Translate: ${EN}", "answer": "y"}`, EN)).toContain("quotes the reference")
    expect(reason("translate_to_english", '{"instruction": "Use <foreign_emb>", "answer": "y"}')).toContain(FOREIGN_EMB)
  })

  it("turns a reply into a row that passes the filters", () => {
    const row = rowFromReply("qa_about_text", KM, EN, { instruction: "How much power does it make?", answer: "5 MW." })
    expect(Schema.decodeUnknownSync(StageBRow)(row)).toEqual(row)
    expect(row.input).toContain("Instruction: How much power does it make?")
    expect(row.input).toContain(FOREIGN_EMB)
    expect(row.origin).toBe("llm")
    expect(checkRow(row)).toEqual({ ok: true })
  })
})

describe("row filters", () => {
  const base = offlineRow("translate_to_english", KM, EN)
  it("enforce non-empty input/output, <foreign_emb>, and 12–256 foreign code points", () => {
    expect(checkRow(base)).toEqual({ ok: true })
    expect(checkRow({ ...base, output: " " })).toEqual({ ok: false, reason: "empty output" })
    expect(checkRow({ ...base, input: "" })).toEqual({ ok: false, reason: "empty input" })
    expect(checkRow({ ...base, input: "Translate: <foreign></foreign>" })).toEqual({ ok: false, reason: "input lacks <foreign_emb>" })
    const chars = (n: number) => "ក".repeat(n)
    expect(checkRow({ ...base, foreign_raw: chars(11) }).ok).toBe(false)
    expect(checkRow({ ...base, foreign_raw: chars(12) }).ok).toBe(true)
    expect(checkRow({ ...base, foreign_raw: chars(256) }).ok).toBe(true)
    const long = checkRow({ ...base, foreign_raw: chars(257) })
    expect(long).toEqual({ ok: false, reason: "foreign text too long (257 > 256 characters)" })
    // Code points, as Python's len(): a coeng cluster counts each code point.
    expect(checkRow({ ...base, foreign_raw: "ក្ខ".repeat(4) }).ok).toBe(true)
    expect(checkRow({ ...base, foreign_raw: "ក" }, { minForeignChars: 1 }).ok).toBe(true)
  })
})

describe("offline synthesizer", () => {
  it("builds deterministic template rows from the reference English", () => {
    const row = (t: TaskType) => offlineRow(t, KM, EN)
    expect(row("translate_to_english")).toEqual({
      task_type: "translate_to_english",
      input: stageBInput(CODE_INSTRUCTIONS.translate_to_english),
      output: EN,
      foreign_raw: KM,
      english_ref: EN,
      origin: "offline"
    })
    // The first clause ("The plant") has < 3 words, so the summary falls back to the first sentence.
    expect(row("summarize_in_english").output).toBe(EN)
    expect(offlineRow("summarize_in_english", KM, "Prices rose sharply in March, according to the ministry. More later.").output).toBe(
      "Prices rose sharply in March."
    )
    expect(firstClause("The officials said - without details - that it ended; nothing else.")).toBe("The officials said")
    expect(firstClause("Officials said - without details.")).toBe("Officials said - without details")
    expect(row("bullet_pointify").output).toBe(
      "- The plant\n- built by EDC in 2019\n- produces 5 MW of power\n- employs 120 people"
    )
    expect(row("qa_about_text").input).toContain("Instruction: What does the text say about 2019?")
    expect(row("qa_about_text").output).toBe(EN)
    expect(row("extract_key_fields").output).toBe("Numbers: 2019, 5 MW, 120\nNames: EDC")
    expect(row("title_generation").output).toBe("The Plant Built by EDC in 2019 Produces")
    expect(row("executive_summary").output).toBe(EN)
    expect(row("paraphrase_in_english").output).toBe(EN)
    for (const t of TaskType.literals) {
      const r = row(t)
      expect(r).toEqual(row(t))
      expect(checkRow(r)).toEqual({ ok: true })
      expect(r.input).toContain(FOREIGN_EMB)
    }
  })

  it("falls back to an entity, then to a generic question", () => {
    expect(offlineRow("qa_about_text", KM, "The minister visited Siem Reap province yesterday.").input).toContain(
      "What does the text say about Siem Reap?"
    )
    expect(offlineRow("qa_about_text", KM, "it rained all day.").input).toContain("What is the text about?")
    expect(capitalisedRuns("Yesterday the Prime Minister met officials. Later they left for Phnom Penh.")).toEqual([
      "Prime Minister",
      "Phnom Penh"
    ])
    expect(splitItems("apples, pears and plums.")).toEqual(["apples", "pears", "plums"])
  })
})

const dataDir = path.resolve(import.meta.dirname, "../../../shared/data/km-en")
const flores = path.join(dataDir, "flores200_devtest.eng_Latn")
const haveData = !skipFor("shared-data", fs.existsSync(flores) ? undefined : `${dataDir} absent: the real-data check skips`)

describe.skipIf(!haveData)("offline synthesizer on real FLORES pairs", () => {
  it("produces rows for every task type; the filters keep those with 12–256 Khmer characters", () => {
    const en = fs.readFileSync(flores, "utf8").split("\n").slice(0, 200)
    const km = fs.readFileSync(path.join(dataDir, "flores200_devtest.khm_Khmr"), "utf8").split("\n").slice(0, 200)
    let kept = 0
    let dropped = 0
    const reasons = new Map<string, number>()
    for (let i = 0; i < en.length; i++) {
      for (const t of TaskType.literals) {
        const row = offlineRow(t, km[i], en[i])
        expect(row.output.trim()).not.toBe("")
        const check = checkRow(row)
        if (check.ok) kept++
        else {
          dropped++
          const key = check.reason.replace(/\(.*\)/, "").trim()
          reasons.set(key, (reasons.get(key) ?? 0) + 1)
          expect(Array.from(km[i]).length > 256 || Array.from(km[i]).length < 12).toBe(true)
        }
      }
    }
    console.log(`offline synthesis on 200 FLORES pairs × 9 tasks: kept ${kept}, dropped ${dropped}`, Object.fromEntries(reasons))
    expect(kept).toBeGreaterThan(0)
  })
})
