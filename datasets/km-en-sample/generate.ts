/**
 * Generates the embedded Khmer–English sample corpus `km-en.sample.tsv` (ParaCrawl "bonus" order: English TAB
 * Khmer, one pair a line), written by the llink authors from templates and word lists — no external data.
 *
 *   node datasets/km-en-sample/generate.ts            # rewrites km-en.sample.tsv beside this file
 *   node datasets/km-en-sample/generate.ts --check    # exits 1 if the committed file differs from a fresh build
 *
 * Deterministic: a fixed-seed PRNG (mulberry32) picks templates and fillers; the same script always writes the same
 * bytes. About 600 lines: everyday sentences (people, places, food, objects, numbers in Khmer digits ០-៩ and Latin
 * digits, dates, times, prices, questions), each with a grammatical Khmer translation ending in ។ (or ?), plus a
 * few realistic noise rows that the pipeline must handle (see NOISE below and datasets/README.md).
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

interface Pair {
  readonly en: string
  readonly km: string
}

// ---------------------------------------------------------------------------------------------------------------
// deterministic randomness

const mulberry32 = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = seed
  t = Math.imul(t ^ (t >>> 15), t | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}
const SEED = 20240917
let rand = mulberry32(SEED)
/** The fillers a template picked while it runs (`generateMini` reads them; recording draws no randomness). */
let picked: Array<string> | undefined
const note = (x: unknown): void => {
  if (picked !== undefined && typeof x !== "function") picked.push(typeof x === "object" ? JSON.stringify(x) : String(x))
}
const pick = <T>(xs: ReadonlyArray<T>): T => {
  const x = xs[Math.floor(rand() * xs.length)]
  note(x)
  return x
}
const int = (lo: number, hi: number): number => {
  const n = lo + Math.floor(rand() * (hi - lo + 1))
  note(n)
  return n
}

// ---------------------------------------------------------------------------------------------------------------
// numbers

const KHMER_DIGITS = "០១២៣៤៥៦៧៨៩"
/** Khmer digits for a number written in Latin digits. */
const khmerDigits = (s: string): string => s.replace(/[0-9]/g, (d) => KHMER_DIGITS[Number(d)])
/** A number as Khmer text writes it: mostly Khmer digits, sometimes Latin digits (both occur in real text). */
const num = (n: number): string => (rand() < 0.7 ? khmerDigits(String(n)) : String(n))

const SMALL: ReadonlyArray<{ readonly n: number; readonly en: string; readonly km: string }> = [
  { n: 2, en: "two", km: "ពីរ" },
  { n: 3, en: "three", km: "បី" },
  { n: 4, en: "four", km: "បួន" },
  { n: 5, en: "five", km: "ប្រាំ" },
  { n: 6, en: "six", km: "ប្រាំមួយ" },
  { n: 7, en: "seven", km: "ប្រាំពីរ" },
  { n: 8, en: "eight", km: "ប្រាំបី" },
  { n: 9, en: "nine", km: "ប្រាំបួន" },
  { n: 10, en: "ten", km: "ដប់" }
]

// ---------------------------------------------------------------------------------------------------------------
// word lists

interface Subject {
  readonly en: string
  readonly km: string
  /** third person singular (English verb takes -s) */
  readonly third: boolean
  readonly be: string
}
const PRONOUNS: ReadonlyArray<Subject> = [
  { en: "I", km: "ខ្ញុំ", third: false, be: "am" },
  { en: "You", km: "អ្នក", third: false, be: "are" },
  { en: "We", km: "យើង", third: false, be: "are" },
  { en: "They", km: "ពួកគេ", third: false, be: "are" }
]
const NAMES: ReadonlyArray<Subject> = [
  ["Dara", "ដារា"],
  ["Sophea", "សុភា"],
  ["Vanna", "វណ្ណា"],
  ["Bopha", "បុប្ផា"],
  ["Sokha", "សុខា"],
  ["Chenda", "ចិន្តា"],
  ["Rithy", "រិទ្ធី"],
  ["Kosal", "កុសល"],
  ["Sreymom", "ស្រីមុំ"],
  ["Piseth", "ពិសិដ្ឋ"]
].map(([en, km]) => ({ en, km, third: true, be: "is" }))
const SUBJECTS = [...PRONOUNS, ...NAMES]
/** The subject inside a sentence (after a time phrase): pronouns other than "I" go lower case. */
const mid = (s: Subject): string => (s.third || s.en === "I" ? s.en : s.en.toLowerCase())
const verb = (s: Subject, base: string, third: string): string => (s.third ? third : base)

const CITIES: ReadonlyArray<Pair> = [
  { en: "Phnom Penh", km: "ភ្នំពេញ" },
  { en: "Siem Reap", km: "សៀមរាប" },
  { en: "Battambang", km: "បាត់ដំបង" },
  { en: "Kampot", km: "កំពត" },
  { en: "Kep", km: "កែប" },
  { en: "Kampong Cham", km: "កំពង់ចាម" },
  { en: "Takeo", km: "តាកែវ" },
  { en: "Sihanoukville", km: "ក្រុងព្រះសីហនុ" },
  { en: "Mondulkiri", km: "មណ្ឌលគិរី" },
  { en: "Kratie", km: "ក្រចេះ" }
]

const PLACES: ReadonlyArray<Pair> = [
  { en: "market", km: "ផ្សារ" },
  { en: "school", km: "សាលារៀន" },
  { en: "hospital", km: "មន្ទីរពេទ្យ" },
  { en: "library", km: "បណ្ណាល័យ" },
  { en: "bank", km: "ធនាគារ" },
  { en: "post office", km: "ប៉ុស្តិ៍ប្រៃសណីយ៍" },
  { en: "pagoda", km: "វត្ត" },
  { en: "restaurant", km: "ភោជនីយដ្ឋាន" },
  { en: "bus station", km: "ស្ថានីយឡានក្រុង" },
  { en: "airport", km: "ព្រលានយន្តហោះ" },
  { en: "museum", km: "សារមន្ទីរ" },
  { en: "pharmacy", km: "ឱសថស្ថាន" }
]

const FOODS: ReadonlyArray<Pair> = [
  { en: "rice", km: "បាយ" },
  { en: "fish", km: "ត្រី" },
  { en: "chicken", km: "សាច់មាន់" },
  { en: "noodle soup", km: "គុយទាវ" },
  { en: "fish amok", km: "អាម៉ុកត្រី" },
  { en: "rice noodles", km: "នំបញ្ចុក" },
  { en: "sour soup", km: "សម្លម្ជូរ" },
  { en: "vegetables", km: "បន្លែ" },
  { en: "bread", km: "នំបុ័ង" },
  { en: "mangoes", km: "ស្វាយ" },
  { en: "bananas", km: "ចេក" },
  { en: "durian", km: "ធុរេន" },
  { en: "fried rice", km: "បាយឆា" }
]
const DISHES = FOODS.filter((f) => ["noodle soup", "fish amok", "sour soup", "fried rice", "rice noodles", "chicken"].includes(f.en))

const DRINKS: ReadonlyArray<Pair> = [
  { en: "coffee", km: "កាហ្វេ" },
  { en: "tea", km: "តែ" },
  { en: "water", km: "ទឹក" },
  { en: "orange juice", km: "ទឹកក្រូច" },
  { en: "coconut water", km: "ទឹកដូង" },
  { en: "milk", km: "ទឹកដោះគោ" },
  { en: "sugarcane juice", km: "ទឹកអំពៅ" }
]

/** Countable things with their Khmer classifier. */
interface Countable {
  readonly en: string
  readonly enOne: string
  readonly km: string
  readonly clf: string
}
const MARKET_ITEMS: ReadonlyArray<Countable> = [
  { en: "mangoes", enOne: "mango", km: "ស្វាយ", clf: "ផ្លែ" },
  { en: "coconuts", enOne: "coconut", km: "ដូង", clf: "ផ្លែ" },
  { en: "pineapples", enOne: "pineapple", km: "ម្នាស់", clf: "ផ្លែ" },
  { en: "eggs", enOne: "egg", km: "ពងមាន់", clf: "គ្រាប់" },
  { en: "fish", enOne: "fish", km: "ត្រី", clf: "ក្បាល" },
  { en: "books", enOne: "book", km: "សៀវភៅ", clf: "ក្បាល" },
  { en: "pens", enOne: "pen", km: "ប៊ិច", clf: "ដើម" },
  { en: "bottles of water", enOne: "bottle of water", km: "ទឹក", clf: "ដប" },
  { en: "kilos of rice", enOne: "kilo of rice", km: "អង្ករ", clf: "គីឡូ" }
]
const ANIMALS: ReadonlyArray<Countable> = [
  { en: "cows", enOne: "cow", km: "គោ", clf: "ក្បាល" },
  { en: "chickens", enOne: "chicken", km: "មាន់", clf: "ក្បាល" },
  { en: "ducks", enOne: "duck", km: "ទា", clf: "ក្បាល" },
  { en: "pigs", enOne: "pig", km: "ជ្រូក", clf: "ក្បាល" },
  { en: "dogs", enOne: "dog", km: "ឆ្កែ", clf: "ក្បាល" },
  { en: "cats", enOne: "cat", km: "ឆ្មា", clf: "ក្បាល" }
]
const CONTAINERS: ReadonlyArray<{ readonly en: string; readonly enOne: string; readonly km: string }> = [
  { en: "cups", enOne: "cup", km: "ពែង" },
  { en: "glasses", enOne: "glass", km: "កែវ" },
  { en: "bottles", enOne: "bottle", km: "ដប" }
]

const OBJECTS: ReadonlyArray<Pair> = [
  { en: "shirt", km: "អាវ" },
  { en: "bag", km: "កាបូប" },
  { en: "hat", km: "មួក" },
  { en: "umbrella", km: "ឆ័ត្រ" },
  { en: "phone", km: "ទូរស័ព្ទ" },
  { en: "bicycle", km: "កង់" },
  { en: "book", km: "សៀវភៅ" },
  { en: "scarf", km: "ក្រមា" },
  { en: "watch", km: "នាឡិកាដៃ" },
  { en: "pair of shoes", km: "ស្បែកជើង" }
]

const RELATIVES: ReadonlyArray<{ readonly en: string; readonly km: string; readonly age: readonly [number, number] }> = [
  { en: "mother", km: "ម្ដាយ", age: [35, 70] },
  { en: "father", km: "ឪពុក", age: [38, 75] },
  { en: "older brother", km: "បងប្រុស", age: [18, 45] },
  { en: "older sister", km: "បងស្រី", age: [18, 45] },
  { en: "younger brother", km: "ប្អូនប្រុស", age: [4, 25] },
  { en: "younger sister", km: "ប្អូនស្រី", age: [3, 25] },
  { en: "grandmother", km: "យាយ", age: [60, 95] },
  { en: "grandfather", km: "តា", age: [62, 95] },
  { en: "uncle", km: "ពូ", age: [30, 70] },
  { en: "aunt", km: "មីង", age: [28, 68] }
]

const JOBS: ReadonlyArray<Pair> = [
  { en: "a teacher", km: "គ្រូបង្រៀន" },
  { en: "a doctor", km: "គ្រូពេទ្យ" },
  { en: "a farmer", km: "កសិករ" },
  { en: "a nurse", km: "គិលានុបដ្ឋាយិកា" },
  { en: "a driver", km: "អ្នកបើកបរ" },
  { en: "an engineer", km: "វិស្វករ" },
  { en: "a cook", km: "ចុងភៅ" },
  { en: "a fisherman", km: "អ្នកនេសាទ" },
  { en: "a seller at the market", km: "អ្នកលក់ដូរនៅផ្សារ" },
  { en: "a police officer", km: "ប៉ូលិស" }
]

const PAST_TIMES: ReadonlyArray<Pair> = [
  { en: "Yesterday", km: "ម្សិលមិញ" },
  { en: "Last week", km: "សប្ដាហ៍មុន" },
  { en: "Last year", km: "ឆ្នាំមុន" },
  { en: "This morning", km: "ព្រឹកនេះ" },
  { en: "Last night", km: "យប់មិញ" },
  { en: "Last month", km: "ខែមុន" }
]
const FUTURE_TIMES: ReadonlyArray<Pair> = [
  { en: "Tomorrow", km: "ថ្ងៃស្អែក" },
  { en: "Next week", km: "សប្ដាហ៍ក្រោយ" },
  { en: "Next month", km: "ខែក្រោយ" },
  { en: "Next year", km: "ឆ្នាំក្រោយ" },
  { en: "This evening", km: "ល្ងាចនេះ" },
  { en: "On Sunday", km: "នៅថ្ងៃអាទិត្យ" }
]
const DAYS: ReadonlyArray<Pair> = [
  { en: "Monday", km: "ថ្ងៃច័ន្ទ" },
  { en: "Tuesday", km: "ថ្ងៃអង្គារ" },
  { en: "Wednesday", km: "ថ្ងៃពុធ" },
  { en: "Thursday", km: "ថ្ងៃព្រហស្បតិ៍" },
  { en: "Friday", km: "ថ្ងៃសុក្រ" },
  { en: "Saturday", km: "ថ្ងៃសៅរ៍" },
  { en: "Sunday", km: "ថ្ងៃអាទិត្យ" }
]
const MONTHS: ReadonlyArray<Pair> = [
  { en: "January", km: "មករា" },
  { en: "February", km: "កុម្ភៈ" },
  { en: "March", km: "មីនា" },
  { en: "April", km: "មេសា" },
  { en: "May", km: "ឧសភា" },
  { en: "June", km: "មិថុនា" },
  { en: "July", km: "កក្កដា" },
  { en: "August", km: "សីហា" },
  { en: "September", km: "កញ្ញា" },
  { en: "October", km: "តុលា" },
  { en: "November", km: "វិច្ឆិកា" },
  { en: "December", km: "ធ្នូ" }
]
const VEHICLES: ReadonlyArray<Pair> = [
  { en: "by bus", km: "ដោយជិះឡានក្រុង" },
  { en: "by car", km: "ដោយជិះឡាន" },
  { en: "by motorbike", km: "ដោយជិះម៉ូតូ" },
  { en: "by boat", km: "ដោយជិះទូក" },
  { en: "by train", km: "ដោយជិះរថភ្លើង" },
  { en: "by bicycle", km: "ដោយជិះកង់" },
  { en: "by tuk-tuk", km: "ដោយជិះតុកតុក" }
]
const HABITS: ReadonlyArray<{ readonly base: string; readonly third: string; readonly km: string }> = [
  { base: "read a book", third: "reads a book", km: "អានសៀវភៅ" },
  { base: "drink coffee", third: "drinks coffee", km: "ផឹកកាហ្វេ" },
  { base: "go to the market", third: "goes to the market", km: "ទៅផ្សារ" },
  { base: "play football", third: "plays football", km: "លេងបាល់ទាត់" },
  { base: "study English", third: "studies English", km: "រៀនភាសាអង់គ្លេស" },
  { base: "swim in the river", third: "swims in the river", km: "ហែលទឹកនៅទន្លេ" },
  { base: "clean the house", third: "cleans the house", km: "បោសសម្អាតផ្ទះ" },
  { base: "visit the pagoda", third: "visits the pagoda", km: "ទៅវត្ត" },
  { base: "water the garden", third: "waters the garden", km: "ស្រោចទឹកសួនច្បារ" }
]
const PERIODS: ReadonlyArray<Pair> = [
  { en: "every morning", km: "រៀងរាល់ព្រឹក" },
  { en: "every evening", km: "រៀងរាល់ល្ងាច" },
  { en: "every day", km: "រៀងរាល់ថ្ងៃ" },
  { en: "every week", km: "រៀងរាល់សប្ដាហ៍" },
  { en: "every Sunday", km: "រៀងរាល់ថ្ងៃអាទិត្យ" }
]
interface Crowd {
  readonly people: string
  /** the noun in Khmer ("" when the classifier says it all) and its classifier */
  readonly peopleKm: string
  readonly clf: string
  readonly place: string
  readonly placeKm: string
  readonly range: readonly [number, number]
}
const CROWDS: ReadonlyArray<Crowd> = [
  { people: "students", peopleKm: "សិស្ស", clf: "នាក់", place: "class", placeKm: "ថ្នាក់រៀន", range: [15, 45] },
  { people: "teachers", peopleKm: "គ្រូបង្រៀន", clf: "នាក់", place: "school", placeKm: "សាលារៀន", range: [8, 60] },
  { people: "doctors", peopleKm: "គ្រូពេទ្យ", clf: "នាក់", place: "hospital", placeKm: "មន្ទីរពេទ្យ", range: [12, 90] },
  { people: "workers", peopleKm: "កម្មករ", clf: "នាក់", place: "factory", placeKm: "រោងចក្រ", range: [40, 900] },
  { people: "families", peopleKm: "", clf: "គ្រួសារ", place: "village", placeKm: "ភូមិ", range: [30, 250] }
]

// ---------------------------------------------------------------------------------------------------------------
// templates

const capital = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1)

const TEMPLATES: ReadonlyArray<() => Pair> = [
  // likes
  () => {
    const s = pick(SUBJECTS)
    const f = pick(FOODS)
    return { en: `${s.en} ${verb(s, "like", "likes")} ${f.en}.`, km: `${s.km}ចូលចិត្ត${f.km}។` }
  },
  // does not like
  () => {
    const s = pick(SUBJECTS)
    const d = rand() < 0.5 ? pick(DRINKS) : pick(FOODS)
    return { en: `${s.en} ${verb(s, "do not", "does not")} like ${d.en}.`, km: `${s.km}មិនចូលចិត្ត${d.km}ទេ។` }
  },
  // bought N things at the market
  () => {
    const t = pick(PAST_TIMES)
    const s = pick(SUBJECTS)
    const item = pick(MARKET_ITEMS)
    const n = pick(SMALL)
    return {
      en: `${t.en}, ${mid(s)} bought ${n.en} ${item.en} at the market.`,
      km: `${t.km} ${s.km}បានទិញ${item.km}${n.km}${item.clf}នៅផ្សារ។`
    }
  },
  // will go to a city
  () => {
    const t = pick(FUTURE_TIMES)
    const s = pick(SUBJECTS)
    const c = pick(CITIES)
    return { en: `${t.en}, ${mid(s)} will go to ${c.en}.`, km: `${t.km} ${s.km}នឹងទៅ${c.km}។` }
  },
  // went somewhere by vehicle
  () => {
    const t = pick(PAST_TIMES)
    const s = pick(SUBJECTS)
    const c = pick(CITIES)
    const v = pick(VEHICLES)
    return { en: `${t.en}, ${mid(s)} went to ${c.en} ${v.en}.`, km: `${t.km} ${s.km}បានទៅ${c.km}${v.km}។` }
  },
  // want to drink?
  () => {
    const d = pick(DRINKS)
    const n = pick(NAMES)
    return rand() < 0.5
      ? { en: `Do you want to drink ${d.en}?`, km: `តើអ្នកចង់ផឹក${d.km}ទេ?` }
      : { en: `Does ${n.en} want some ${d.en}?`, km: `តើ${n.km}ចង់បាន${d.km}ទេ?` }
  },
  // what do you want to eat
  () => {
    const t = pick([
      { en: "this morning", km: "ព្រឹកនេះ" },
      { en: "this evening", km: "ល្ងាចនេះ" },
      { en: "tonight", km: "យប់នេះ" },
      { en: "for lunch", km: "សម្រាប់អាហារថ្ងៃត្រង់" }
    ])
    return { en: `What do you want to eat ${t.en}?`, km: `តើអ្នកចង់ញ៉ាំអ្វី${t.km}?` }
  },
  // price question
  () => {
    const o = pick(OBJECTS)
    return { en: `How much does this ${o.en} cost?`, km: `${o.km}នេះថ្លៃប៉ុន្មាន?` }
  },
  // price in dollars
  () => {
    const o = pick(OBJECTS)
    const n = int(2, 180)
    return { en: `This ${o.en} costs ${n} dollars.`, km: `${o.km}នេះថ្លៃ ${num(n)} ដុល្លារ។` }
  },
  // price in riel per kilo
  () => {
    const f = pick(MARKET_ITEMS.filter((m) => m.clf === "ផ្លែ" || m.en === "fish"))
    const riel = int(3, 40) * 500
    return {
      en: `A kilo of ${f.en} costs ${riel.toLocaleString("en-US")} riel.`,
      km: `${f.km}មួយគីឡូថ្លៃ ${num(riel)} រៀល។`
    }
  },
  // how many people
  () => {
    const c = pick(CROWDS)
    const n = int(c.range[0], c.range[1])
    return { en: `There are ${n} ${c.people} in the ${c.place}.`, km: `នៅក្នុង${c.placeKm}មាន${c.peopleKm} ${num(n)} ${c.clf}។` }
  },
  // age
  () => {
    const r = pick(RELATIVES)
    const n = int(r.age[0], r.age[1])
    return { en: `My ${r.en} is ${n} years old.`, km: `${r.km}របស់ខ្ញុំអាយុ ${num(n)} ឆ្នាំ។` }
  },
  // job
  () => {
    const r = pick(RELATIVES.filter((x) => x.age[0] >= 18))
    const j = pick(JOBS)
    const c = pick(CITIES)
    return { en: `My ${r.en} works as ${j.en} in ${c.en}.`, km: `${r.km}របស់ខ្ញុំធ្វើការជា${j.km}នៅ${c.km}។` }
  },
  // bus time
  () => {
    const c = pick(CITIES)
    const h = int(5, 11)
    const half = rand() < 0.4
    return half
      ? { en: `The bus to ${c.en} leaves at ${h}:30 in the morning.`, km: `ឡានក្រុងទៅ${c.km}ចេញនៅម៉ោង ${num(h)} កន្លះព្រឹក។` }
      : { en: `The bus to ${c.en} leaves at ${h} o'clock in the morning.`, km: `ឡានក្រុងទៅ${c.km}ចេញនៅម៉ោង ${num(h)} ព្រឹក។` }
  },
  // opening hours
  () => {
    const p = pick(PLACES)
    const open = int(6, 9)
    const close = int(4, 9)
    return {
      en: `The ${p.en} opens at ${open} in the morning and closes at ${close} in the evening.`,
      km: `${p.km}បើកនៅម៉ោង ${num(open)} ព្រឹក ហើយបិទនៅម៉ោង ${num(close)} ល្ងាច។`
    }
  },
  // progressive
  () => {
    const s = pick(SUBJECTS)
    const d = pick(DISHES)
    return { en: `${s.en} ${s.be} cooking ${d.en} in the kitchen.`, km: `${s.km}កំពុងចម្អិន${d.km}នៅក្នុងផ្ទះបាយ។` }
  },
  // delicious
  () => {
    const d = pick(DISHES)
    const c = pick(CITIES)
    const be = d.en.endsWith("s") ? "are" : "is"
    return rand() < 0.5
      ? { en: `The ${d.en} at this restaurant ${be} very delicious.`, km: `${d.km}នៅភោជនីយដ្ឋាននេះឆ្ងាញ់ណាស់។` }
      : { en: `The ${d.en} in ${c.en} ${be} famous.`, km: `${d.km}នៅ${c.km}ល្បីណាស់។` }
  },
  // habits
  () => {
    const s = pick(SUBJECTS)
    const h = pick(HABITS)
    const p = pick(PERIODS)
    return { en: `${s.en} ${s.third ? h.third : h.base} ${p.en}.`, km: `${s.km}${h.km}${p.km}។` }
  },
  // where is
  () => {
    const p = pick(PLACES)
    return rand() < 0.5
      ? { en: `Where is the ${p.en}?`, km: `តើ${p.km}នៅឯណា?` }
      : { en: `Excuse me, is the ${p.en} far from here?`, km: `សុំទោស តើ${p.km}នៅឆ្ងាយពីទីនេះទេ?` }
  },
  // when will X come back
  () => {
    const n = pick(NAMES)
    const c = pick(CITIES)
    return { en: `When will ${n.en} come back from ${c.en}?`, km: `តើ${n.km}នឹងត្រឡប់មកពី${c.km}វិញនៅពេលណា?` }
  },
  // meeting on a day
  () => {
    const s = pick(PRONOUNS.filter((x) => x.en !== "They"))
    const n = pick(NAMES)
    const p = pick(PLACES)
    const d = pick(DAYS)
    return {
      en: `${s.en} will meet ${n.en} at the ${p.en} on ${d.en}.`,
      km: `${s.km}នឹងជួប${n.km}នៅ${p.km}នៅ${d.km}។`
    }
  },
  // birthday
  () => {
    const n = pick(NAMES)
    const m = pick(MONTHS)
    const d = int(1, 28)
    return { en: `${n.en}'s birthday is on ${d} ${m.en}.`, km: `ថ្ងៃកំណើតរបស់${n.km}គឺនៅថ្ងៃទី ${num(d)} ខែ${m.km}។` }
  },
  // meeting date with year
  () => {
    const m = pick(MONTHS)
    const d = int(1, 28)
    const y = int(2019, 2026)
    return {
      en: `The meeting will take place on ${d} ${m.en} ${y}.`,
      km: `កិច្ចប្រជុំនឹងធ្វើឡើងនៅថ្ងៃទី ${num(d)} ខែ${m.km} ឆ្នាំ ${num(y)}។`
    }
  },
  // phone number
  () => {
    const digits = `0${int(10, 99)} ${int(100, 999)} ${int(100, 999)}`
    const n = rand() < 0.5 ? null : pick(NAMES)
    return n === null
      ? { en: `My phone number is ${digits}.`, km: `លេខទូរស័ព្ទរបស់ខ្ញុំគឺ ${num0(digits)}។` }
      : { en: `${n.en}'s phone number is ${digits}.`, km: `លេខទូរស័ព្ទរបស់${n.km}គឺ ${num0(digits)}។` }
  },
  // distance
  () => {
    const a = pick(CITIES)
    const b = pick(CITIES.filter((c) => c !== a))
    const km = int(25, 520)
    return { en: `It is ${km} kilometres from ${a.en} to ${b.en}.`, km: `ពី${a.km}ទៅ${b.km}មានចម្ងាយ ${num(km)} គីឡូម៉ែត្រ។` }
  },
  // animals owned
  () => {
    const s = pick(SUBJECTS)
    const a = pick(ANIMALS)
    const n = pick(SMALL)
    return { en: `${s.en} ${verb(s, "have", "has")} ${n.en} ${a.en}.`, km: `${s.km}មាន${a.km}${n.km}${a.clf}។` }
  },
  // lived for years
  () => {
    const s = pick(SUBJECTS)
    const c = pick(CITIES)
    const n = int(2, 30)
    return {
      en: `${s.en} ${verb(s, "have", "has")} lived in ${c.en} for ${n} years.`,
      km: `${s.km}រស់នៅ${c.km}បាន ${num(n)} ឆ្នាំហើយ។`
    }
  },
  // please give me N cups
  () => {
    const d = pick(DRINKS)
    const c = pick(CONTAINERS)
    const n = pick(SMALL.slice(0, 3))
    return { en: `Please give me ${n.en} ${c.en} of ${d.en}.`, km: `សូមឲ្យខ្ញុំ${d.km}${n.km}${c.km}។` }
  },
  // time now
  () => {
    const h = int(1, 12)
    return { en: `What time is it now? It is ${h} o'clock.`, km: `ឥឡូវនេះម៉ោងប៉ុន្មានហើយ? ម៉ោង ${num(h)} ហើយ។` }
  },
  // weather
  () => {
    const c = pick(CITIES)
    const t = pick(PAST_TIMES.slice(0, 2))
    return pick([
      { en: "It is very hot today.", km: "ថ្ងៃនេះក្ដៅណាស់។" },
      { en: "It is cold this morning.", km: "ព្រឹកនេះត្រជាក់។" },
      { en: `It rained heavily in ${c.en} ${t.en.toLowerCase()}.`, km: `${t.km} នៅ${c.km}មានភ្លៀងខ្លាំង។` },
      { en: `It will rain in ${c.en} this afternoon.`, km: `រសៀលនេះ នៅ${c.km}នឹងមានភ្លៀង។` },
      { en: `The weather in ${c.en} is nice in December.`, km: `អាកាសធាតុនៅ${c.km}ល្អនៅខែធ្នូ។` }
    ])
  },
  // a temperature
  () => {
    const c = pick(CITIES)
    const t = int(24, 39)
    return { en: `The temperature in ${c.en} is ${t} degrees today.`, km: `ថ្ងៃនេះសីតុណ្ហភាពនៅ${c.km}គឺ ${num(t)} អង្សា។` }
  },
  // fixed phrases and facts (picked rarely enough not to repeat much)
  () =>
    pick([
      { en: "Hello, how are you?", km: "សួស្ដី តើអ្នកសុខសប្បាយជាទេ?" },
      { en: "I am fine, thank you.", km: "ខ្ញុំសុខសប្បាយជាទេ អរគុណ។" },
      { en: "Thank you very much.", km: "អរគុណច្រើន។" },
      { en: "Nice to meet you.", km: "រីករាយដែលបានជួបអ្នក។" },
      { en: "I do not understand.", km: "ខ្ញុំមិនយល់ទេ។" },
      { en: "Please speak slowly.", km: "សូមនិយាយយឺតៗ។" },
      { en: "Can you speak Khmer?", km: "តើអ្នកអាចនិយាយភាសាខ្មែរបានទេ?" },
      { en: "I can speak a little Khmer.", km: "ខ្ញុំអាចនិយាយភាសាខ្មែរបានបន្តិចបន្តួច។" },
      { en: "Phnom Penh is the capital of Cambodia.", km: "ភ្នំពេញគឺជារាជធានីនៃប្រទេសកម្ពុជា។" },
      { en: "Angkor Wat is in Siem Reap province.", km: "អង្គរវត្តស្ថិតនៅក្នុងខេត្តសៀមរាប។" },
      { en: "The Mekong River flows through Phnom Penh.", km: "ទន្លេមេគង្គហូរកាត់រាជធានីភ្នំពេញ។" },
      { en: "Kampot is famous for its pepper.", km: "កំពតល្បីល្បាញខាងម្រេច។" },
      { en: "Kep is famous for its crabs.", km: "កែបល្បីខាងក្ដាម។" },
      { en: "Khmer New Year is in April.", km: "បុណ្យចូលឆ្នាំខ្មែរគឺនៅខែមេសា។" },
      { en: "The water festival takes place in November.", km: "ពិធីបុណ្យអុំទូកប្រព្រឹត្តទៅនៅខែវិច្ឆិកា។" },
      { en: "Where are you going?", km: "តើអ្នកកំពុងទៅណា?" },
      { en: "Have you eaten yet?", km: "តើអ្នកញ៉ាំបាយហើយឬនៅ?" },
      { en: "The children are playing in the garden.", km: "ក្មេងៗកំពុងលេងនៅក្នុងសួនច្បារ។" },
      { en: "The road to the village is very muddy in the rainy season.", km: "ផ្លូវទៅភូមិភក់ខ្លាំងណាស់នៅរដូវវស្សា។" },
      { en: "Please close the window.", km: "សូមបិទបង្អួច។" },
      { en: "My house is near the river.", km: "ផ្ទះរបស់ខ្ញុំនៅជិតទន្លេ។" },
      { en: "The doctor told me to rest for three days.", km: "គ្រូពេទ្យប្រាប់ខ្ញុំឲ្យសម្រាកបីថ្ងៃ។" }
    ])
]

/** Digits of a phone number in Khmer digits or Latin digits (the whole number in one style). */
const num0 = (s: string): string => (rand() < 0.7 ? khmerDigits(s) : s)

// ---------------------------------------------------------------------------------------------------------------
// noise rows (realistic damage the pipeline must handle), inserted at fixed positions

const ZWSP = "\u200B"
const makeLong = (): Pair => {
  // a long paragraph: several sentences joined, well over 256 Khmer code points
  const parts: Array<Pair> = [
    { en: "Last year my family travelled from Phnom Penh to Siem Reap by bus.", km: "ឆ្នាំមុន គ្រួសាររបស់ខ្ញុំបានធ្វើដំណើរពីភ្នំពេញទៅសៀមរាបដោយជិះឡានក្រុង។" },
    { en: "We visited Angkor Wat early in the morning and watched the sunrise.", km: "យើងបានទៅលេងអង្គរវត្តនៅពេលព្រឹកព្រលឹម ហើយមើលថ្ងៃរះ។" },
    { en: "In the afternoon we ate fish amok and rice at a small restaurant near the old market.", km: "នៅពេលរសៀល យើងបានញ៉ាំអាម៉ុកត្រីជាមួយបាយនៅភោជនីយដ្ឋានតូចមួយក្បែរផ្សារចាស់។" },
    { en: "My grandmother bought a red scarf and two kilos of mangoes for our neighbours.", km: "យាយរបស់ខ្ញុំបានទិញក្រមាពណ៌ក្រហមមួយ និងស្វាយពីរគីឡូសម្រាប់អ្នកជិតខាងរបស់យើង។" },
    { en: "We came back home on Sunday evening, tired but very happy.", km: "យើងបានត្រឡប់មកផ្ទះវិញនៅល្ងាចថ្ងៃអាទិត្យ ទោះបីហត់ ប៉ុន្តែសប្បាយចិត្តណាស់។" }
  ]
  return { en: parts.map((p) => p.en).join(" "), km: parts.map((p) => p.km).join(" ") }
}

/** Raw lines (already joined with TAB where applicable), inserted after the given pair index. */
const NOISE = (pairs: ReadonlyArray<Pair>): ReadonlyArray<readonly [number, string]> => [
  // an exact duplicate of an earlier pair (clean: duplicate)
  [120, `${pairs[17].en}\t${pairs[17].km}`],
  // an empty Khmer side (ingest: empty-foreign)
  [150, "Good night.\t"],
  // an empty English side (ingest: empty-english)
  [175, "\tរាត្រីសួស្ដី។"],
  // romanised Khmer only, no Khmer script (clean: script-share)
  [210, "I want to go to the market today.\tKhnhom chong tov phsar thngai nih."],
  // zero-width spaces between Khmer words, as in much real Khmer text (clean: removed)
  [260, `I like to eat rice with fish.\tខ្ញុំ${ZWSP}ចូលចិត្ត${ZWSP}ញ៉ាំ${ZWSP}បាយ${ZWSP}ជាមួយ${ZWSP}ត្រី។`],
  [330, `The school is closed on Sunday.\tសាលារៀន${ZWSP}បិទ${ZWSP}នៅ${ZWSP}ថ្ងៃអាទិត្យ។`],
  // a very long pair, > 256 Khmer code points (clean: truncated)
  [300, (() => {
    const p = makeLong()
    return `${p.en}\t${p.km}`
  })()],
  // a line with no tab: two fields run together (ingest: wrong-column-count)
  [380, "The library opens at eight. បណ្ណាល័យបើកនៅម៉ោងប្រាំបី។"],
  // a line with a third column (ingest: wrong-column-count)
  [420, "See you tomorrow.\tជួបគ្នាថ្ងៃស្អែក។\tsource=chat"],
  // extra whitespace and a decomposed é (clean: whitespace, NFC)
  [450, `  We drank coffee at a small cafe\u0301 in Kep.  \tយើងបានផឹកកាហ្វេនៅហាងកាហ្វេតូចមួយ  នៅកែប។`]
]

export const TARGET_PAIRS = 590

export const generate = (): string => {
  rand = mulberry32(SEED)
  const pairs: Array<Pair> = []
  const seen = new Set<string>()
  let attempts = 0
  while (pairs.length < TARGET_PAIRS) {
    if (++attempts > 100_000) throw new Error("templates cannot produce enough distinct pairs")
    const p = pick(TEMPLATES)()
    const key = `${p.en}\t${p.km}`
    if (seen.has(key)) continue
    seen.add(key)
    pairs.push({ en: capital(p.en), km: p.km })
  }
  const noise = new Map<number, Array<string>>()
  for (const [at, line] of NOISE(pairs)) noise.set(at, [...(noise.get(at) ?? []), line])
  const lines: Array<string> = []
  pairs.forEach((p, i) => {
    lines.push(`${p.en}\t${p.km}`)
    for (const n of noise.get(i) ?? []) lines.push(n)
  })
  return lines.join("\n") + "\n"
}

/** Pairs of the miniature corpus (the embedded default's): more distinct sentences, another seed, no noise rows. */
export const MINI_PAIRS = 3000
/** The miniature's evaluation block: its last `MINI_HOLDOUT` lines (`split.holdoutFrom: "end"` takes them). */
export const MINI_HOLDOUT = 400
const MINI_SEED = 20261205

/** Fillers that occur only in the evaluation block: a name, a city, a place, an object (whole words). */
export const MINI_HELD_OUT_WORDS: ReadonlyArray<string> = ["Piseth", "Kratie", "pharmacy", "umbrella"]
/** …and numbers ≥ 17 whose last digit is 7 (17, 27, …, 177, 8,517 — thousands commas ignored). */
export const isHeldOutNumber = (n: number): boolean => n >= 17 && n % 10 === 7
const HELD_OUT_WORD = new RegExp(`\\b(?:${MINI_HELD_OUT_WORDS.join("|")})\\b`)

/** Whether an English sentence holds one of the miniature's held-out fillers. */
export const hasHeldOutFiller = (english: string): boolean =>
  HELD_OUT_WORD.test(english) || (english.match(/\d[\d,]*/g) ?? []).some((d) => isHeldOutNumber(Number(d.replace(/,/g, ""))))

/** A generated pair with its filler combination: the sorted fillers its template picked (names, places, numbers,
 *  …), whatever the template. Two pairs with the same combination say related things about the same fillers. */
export interface MiniPair {
  readonly en: string
  readonly km: string
  readonly combination: string
}

/**
 * The miniature corpus as pairs: `n − MINI_HOLDOUT` training-side pairs, then the `MINI_HOLDOUT`-pair evaluation
 * block, so retrieval and translation cannot be solved by recalling memorised sentences:
 * - a third of the block holds a held-out filler (`hasHeldOutFiller`): none occurs on the training side;
 * - the rest are new combinations of seen fillers: no block pair's filler combination occurs on the training side
 *   (whole combination groups go to one side).
 * The training side keeps generation order; the block is shuffled. Numbers, prices, dates and times stay.
 */
export const miniPairs = (n: number = MINI_PAIRS): ReadonlyArray<MiniPair> => {
  rand = mulberry32(MINI_SEED)
  const heldWanted = Math.round(MINI_HOLDOUT / 3)
  const held: Array<MiniPair> = []
  const plain: Array<MiniPair> = []
  const seen = new Set<string>()
  let attempts = 0
  while (plain.length < n || held.length < heldWanted) {
    if (++attempts > 1_000_000) throw new Error("templates cannot produce enough distinct pairs")
    const template = pick(TEMPLATES)
    picked = []
    const p = template()
    const combination = picked.sort().join("|")
    picked = undefined
    const en = capital(p.en)
    if (seen.has(en) || seen.has(p.km)) continue
    seen.add(en)
    seen.add(p.km)
    ;(hasHeldOutFiller(en) ? held : plain).push({ en, km: p.km, combination })
  }
  const groups = new Map<string, Array<MiniPair>>()
  for (const p of plain) groups.set(p.combination, [...(groups.get(p.combination) ?? []), p])
  const keys = [...groups.keys()]
  for (let i = keys.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1))
    ;[keys[i], keys[j]] = [keys[j], keys[i]]
  }
  const block: Array<MiniPair> = held.slice(0, heldWanted)
  // a template may pick a filler it does not use, so a held-out pair's combination can equal a plain one's
  const inBlock = new Set<string>(block.map((p) => p.combination))
  for (const key of keys) {
    const group = groups.get(key)!
    if (inBlock.has(key) || block.length + group.length > MINI_HOLDOUT) continue
    block.push(...group)
    inBlock.add(key)
    if (block.length === MINI_HOLDOUT) break
  }
  const trainSide = plain.filter((p) => !inBlock.has(p.combination)).slice(0, n - MINI_HOLDOUT)
  if (block.length !== MINI_HOLDOUT || trainSide.length !== n - MINI_HOLDOUT) {
    throw new Error(`the templates gave ${trainSide.length} training-side and ${block.length} block pairs`)
  }
  for (let i = block.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1))
    ;[block[i], block[j]] = [block[j], block[i]]
  }
  return [...trainSide, ...block]
}

/** The miniature corpus file's text (English TAB Khmer; the noise cases are the sample's job). */
export const generateMini = (n: number = MINI_PAIRS): string => miniPairs(n).map((p) => `${p.en}\t${p.km}`).join("\n") + "\n"

const here = path.dirname(fileURLToPath(import.meta.url))
export const SAMPLE_FILE = path.join(here, "km-en.sample.tsv")
export const MINI_FILE = path.join(here, "km-en.mini.tsv")

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  let stale = false
  for (const [file, text] of [[SAMPLE_FILE, generate()], [MINI_FILE, generateMini()]] as const) {
    if (process.argv.includes("--check")) {
      const current = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : ""
      if (current !== text) {
        console.error(`${file} is stale: run node datasets/km-en-sample/generate.ts`)
        stale = true
      } else console.log(`${file} is up to date`)
    } else {
      fs.writeFileSync(file, text)
      console.log(`wrote ${file}: ${text.split("\n").length - 1} lines`)
    }
  }
  if (stale) process.exit(1)
}
