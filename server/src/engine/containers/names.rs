//! Names for containers made without `--name`: an adjective and a scientist's or
//! engineer's surname, in the style learners see on any Docker host (`brave_hopper`).

const ADJECTIVES: &[&str] = &[
    "agile", "amazing", "bold", "brave", "bright", "busy", "calm", "careful", "cheerful", "clever", "cool", "curious",
    "daring", "eager", "elated", "fervent", "friendly", "gallant", "gentle", "happy", "hopeful", "jolly", "keen",
    "kind", "lively", "lucid", "merry", "modest", "nifty", "patient", "peaceful", "quick", "quiet", "relaxed",
    "serene", "sharp", "steady", "sunny", "swift", "tender", "upbeat", "vibrant", "witty", "zealous",
];

const SURNAMES: &[&str] = &[
    "allen",
    "babbage",
    "backus",
    "bardeen",
    "bell",
    "boole",
    "cerf",
    "curie",
    "dijkstra",
    "einstein",
    "euler",
    "faraday",
    "feynman",
    "franklin",
    "gauss",
    "goldberg",
    "hamilton",
    "hopper",
    "kahn",
    "keller",
    "knuth",
    "lamarr",
    "lamport",
    "liskov",
    "lovelace",
    "maxwell",
    "meitner",
    "mirzakhani",
    "newton",
    "noether",
    "pascal",
    "perlman",
    "ritchie",
    "shannon",
    "sinoussi",
    "somerville",
    "thompson",
    "torvalds",
    "turing",
    "vaughan",
    "wilson",
    "wozniak",
    "yonath",
    "zuse",
];

/// A name `taken` says is free; a number is added if the pairs run out.
pub fn generate(taken: impl Fn(&str) -> bool) -> String {
    for attempt in 0.. {
        let a = ADJECTIVES[rand::random_range(0..ADJECTIVES.len())];
        let s = SURNAMES[rand::random_range(0..SURNAMES.len())];
        let name = if attempt < 20 {
            format!("{a}_{s}")
        } else {
            format!("{a}_{s}{}", rand::random_range(0..100))
        };
        if !taken(&name) {
            return name;
        }
    }
    unreachable!("the loop returns")
}
