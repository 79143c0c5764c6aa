//! Round trips and refusals of the wire <-> domain conversions.
