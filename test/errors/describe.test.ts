/** `describeError`, the one way an error becomes text: messages along the cause chain, no repeats, tags, codes. */
import { Cause, Schema } from "effect"
import { describe, expect, it } from "vitest"
import { describeError } from "../../src/errors/describe.ts"

class Tagged extends Schema.TaggedError<Tagged>()("Tagged", { message: Schema.String, cause: Schema.optional(Schema.Unknown) }) {}
class Bare extends Schema.TaggedError<Bare>()("Bare", {}) {}

describe("describeError", () => {
  it("a plain error, a thrown string and a non-error object", () => {
    expect(describeError(new Error("boom"))).toBe("boom")
    expect(describeError("just text")).toBe("just text")
    expect(describeError(42)).toBe("42")
    expect(describeError({ message: "from an object" })).toBe("from an object")
    expect(describeError({ _tag: "NoMessage" })).toBe("NoMessage")
  })

  it("puts a Node system error's code first unless its message has it", () => {
    const plain = Object.assign(new Error("no such file"), { code: "ENOENT" })
    expect(describeError(plain)).toBe("ENOENT: no such file")
    const node = Object.assign(new Error("ENOENT: no such file or directory, open 'x'"), { code: "ENOENT" })
    expect(describeError(node)).toBe("ENOENT: no such file or directory, open 'x'")
  })

  it("follows the cause chain, skipping a cause the outer message already quotes", () => {
    const root = Object.assign(new Error("connection refused"), { code: "ECONNREFUSED" })
    const mid = new Tagged({ message: "storage read failed", cause: root })
    const top = new Tagged({ message: "shard 3 failed", cause: mid })
    expect(describeError(top)).toBe("shard 3 failed: storage read failed: ECONNREFUSED: connection refused")
    const quoting = new Tagged({ message: "cannot open a.parquet: disk gone", cause: new Error("disk gone") })
    expect(describeError(quoting)).toBe("cannot open a.parquet: disk gone")
  })

  it("names an error without a message by its tag, and never renders an Effect Cause as a cause", () => {
    expect(describeError(new Bare())).toBe("Bare")
    const withCause = new Tagged({ message: "stage failed", cause: Cause.fail("inner") })
    expect(describeError(withCause)).toBe("stage failed")
  })

  it("stops on a cycle in the chain", () => {
    const a = new Error("a")
    const b = new Error("b", { cause: a })
    ;(a as { cause?: unknown }).cause = b
    expect(describeError(b)).toBe("b: a")
  })
})
