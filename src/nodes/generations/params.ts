/** `generations` has no settings: it joins `generate`'s and `generatePeers`' tables. */
import { Schema } from "effect"

export const GenerationsParams = Schema.Struct({})
export type GenerationsParams = typeof GenerationsParams.Type
