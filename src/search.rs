//! The words of search: how a message's text becomes index tokens, and how a query
//! is parsed and checked against a message. Pure functions; the store keeps the
//! index ([`crate::store`]), the domain decides who may find what.
//!
//! Text is normalized first (NFKC, then Unicode lower case), so `Ｒｕｓｔ`, `RUST`
//! and `rust` are one word. Then it is cut into segments:
//! - a **word** is a run of letters, digits and combining marks of the scripts that
//!   separate words with spaces (Latin, Cyrillic, Greek, …); it is one token;
//! - a **CJK run** is a run of Hangul, Han, Hiragana or Katakana characters. Korean
//!   sticks particles to nouns (`학교에`, `학교를`) and Chinese and Japanese do not
//!   separate words at all, so a run is indexed by its character bigrams (`학교`,
//!   `교에`) and its single characters (`학`, `교`, `에`). A query run of two or more
//!   characters looks up bigrams that cover it, one of one character its unigram;
//!   either way the candidates are then checked against the stored text, so a query
//!   run finds exactly the messages that contain it: `학교` and `갔다` both find
//!   `학교에 갔다`, `교에서` does not find `학교 에서`.
//!
//! A query of several terms finds the messages that match all of them.

use std::collections::{BTreeSet, HashSet};

use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// A token is cut to at most this many bytes (on a character boundary), so that a
/// pasted blob does not make one huge key; the check of the stored text still
/// compares whole words.
pub const MAX_TOKEN_BYTES: usize = 64;
/// The longest query, in bytes.
pub const MAX_QUERY_BYTES: usize = 256;
/// The most terms a query may have.
pub const MAX_QUERY_TERMS: usize = 16;

/// Why a query is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("the query has no word to search for")]
    Empty,
    #[error("the query is over {MAX_QUERY_BYTES} bytes")]
    TooLong,
    #[error("the query has more than {MAX_QUERY_TERMS} words")]
    TooManyTerms,
}

/// One piece of normalized text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Segment<'a> {
    Word(&'a str),
    Cjk(&'a str),
}

/// Whether `c` belongs to a script written without spaces between words (or, for
/// Korean, with particles stuck to words): Hangul, Han, Hiragana, Katakana.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x1100..=0x11FF        // Hangul Jamo
        | 0x3040..=0x30FF      // Hiragana, Katakana
        | 0x3130..=0x318F      // Hangul Compatibility Jamo
        | 0x31F0..=0x31FF      // Katakana Phonetic Extensions
        | 0x3400..=0x4DBF      // CJK Unified Ideographs Extension A
        | 0x4E00..=0x9FFF      // CJK Unified Ideographs
        | 0xA960..=0xA97F      // Hangul Jamo Extended-A
        | 0xAC00..=0xD7A3      // Hangul Syllables
        | 0xD7B0..=0xD7FF      // Hangul Jamo Extended-B
        | 0xF900..=0xFAFF      // CJK Compatibility Ideographs
        | 0x20000..=0x3134F // CJK Unified Ideographs Extensions B–H
    )
}

/// Whether `c` is part of a word of a space-separated script: a letter, a digit, or
/// a combining mark (which carries accents in decomposed text and vowels in Indic
/// scripts).
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric()
        || matches!(
            c.general_category(),
            GeneralCategory::NonspacingMark
                | GeneralCategory::SpacingMark
                | GeneralCategory::EnclosingMark
        )
}

/// The form every text is compared in: NFKC, then lower case.
pub fn normalize(text: &str) -> String {
    text.nfkc().collect::<String>().to_lowercase()
}

/// The words and CJK runs of normalized text, in order.
fn segments(normalized: &str) -> impl Iterator<Item = Segment<'_>> {
    let mut rest = normalized;
    std::iter::from_fn(move || loop {
        let mut chars = rest.char_indices();
        let (_, first) = chars.next()?;
        let cjk = is_cjk(first);
        if !cjk && !is_word_char(first) {
            rest = &rest[first.len_utf8()..];
            continue;
        }
        let end = chars
            .find(|&(_, c)| {
                if cjk {
                    !is_cjk(c)
                } else {
                    is_cjk(c) || !is_word_char(c)
                }
            })
            .map_or(rest.len(), |(i, _)| i);
        let (segment, tail) = rest.split_at(end);
        rest = tail;
        return Some(if cjk {
            Segment::Cjk(segment)
        } else {
            Segment::Word(segment)
        });
    })
}

/// `text` cut to at most [`MAX_TOKEN_BYTES`] bytes, on a character boundary.
fn capped(text: &str) -> &str {
    if text.len() <= MAX_TOKEN_BYTES {
        return text;
    }
    let mut end = MAX_TOKEN_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The tokens a message's text is indexed under, each once: its words, and the
/// unigrams and bigrams of its CJK runs.
pub fn index_tokens(text: &str) -> BTreeSet<String> {
    let normalized = normalize(text);
    let mut tokens = BTreeSet::new();
    for segment in segments(&normalized) {
        match segment {
            Segment::Word(word) => {
                tokens.insert(capped(word).to_owned());
            }
            Segment::Cjk(run) => {
                let mut previous: Option<(usize, char)> = None;
                for (i, c) in run.char_indices() {
                    tokens.insert(c.to_string());
                    if let Some((start, _)) = previous {
                        tokens.insert(run[start..i + c.len_utf8()].to_owned());
                    }
                    previous = Some((i, c));
                }
            }
        }
    }
    tokens
}

/// One term of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    /// A whole word, matched as a word.
    Word(String),
    /// A CJK run, matched as a substring.
    Cjk(String),
}

/// A parsed query: the terms a message must all match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    terms: Vec<Term>,
}

impl Query {
    /// Parses a query: at most [`MAX_QUERY_BYTES`] bytes and [`MAX_QUERY_TERMS`]
    /// terms, at least one term. A repeated term counts once.
    pub fn parse(text: &str) -> Result<Self, QueryError> {
        if text.len() > MAX_QUERY_BYTES {
            return Err(QueryError::TooLong);
        }
        let normalized = normalize(text);
        let mut terms: Vec<Term> = Vec::new();
        for segment in segments(&normalized) {
            let term = match segment {
                Segment::Word(word) => Term::Word(word.to_owned()),
                Segment::Cjk(run) => Term::Cjk(run.to_owned()),
            };
            if !terms.contains(&term) {
                terms.push(term);
            }
        }
        if terms.is_empty() {
            return Err(QueryError::Empty);
        }
        if terms.len() > MAX_QUERY_TERMS {
            return Err(QueryError::TooManyTerms);
        }
        Ok(Self { terms })
    }

    /// The index tokens a matching message certainly has, each once. Every one of
    /// them is looked up, so a CJK run is covered by as few bigrams as do: those at
    /// even positions, and the last one.
    pub fn tokens(&self) -> Vec<String> {
        let mut tokens: Vec<String> = Vec::new();
        let mut add = |token: &str| {
            if !tokens.iter().any(|t| t == token) {
                tokens.push(token.to_owned());
            }
        };
        for term in &self.terms {
            match term {
                Term::Word(word) => add(capped(word)),
                Term::Cjk(run) => {
                    let chars: Vec<(usize, char)> = run.char_indices().collect();
                    if chars.len() == 1 {
                        add(run);
                        continue;
                    }
                    let bigram = |i: usize| {
                        let (start, _) = chars[i];
                        let (last, c) = chars[i + 1];
                        &run[start..last + c.len_utf8()]
                    };
                    for i in (0..chars.len() - 1).step_by(2) {
                        add(bigram(i));
                    }
                    if chars.len() % 2 == 1 {
                        add(bigram(chars.len() - 2));
                    }
                }
            }
        }
        tokens
    }

    /// Whether a message's text matches every term: each word is one of its words,
    /// each CJK run is in its text. The last word on what is found: the index only
    /// proposes candidates.
    pub fn matches(&self, text: &str) -> bool {
        let normalized = normalize(text);
        let mut words: Option<HashSet<&str>> = None;
        self.terms.iter().all(|term| match term {
            Term::Word(word) => words
                .get_or_insert_with(|| {
                    segments(&normalized)
                        .filter_map(|s| match s {
                            Segment::Word(w) => Some(w),
                            Segment::Cjk(_) => None,
                        })
                        .collect()
                })
                .contains(word.as_str()),
            Term::Cjk(run) => normalized.contains(run.as_str()),
        })
    }

    /// The text of the terms, normalized, for a client to highlight.
    pub fn terms(&self) -> impl Iterator<Item = &str> {
        self.terms.iter().map(|t| match t {
            Term::Word(w) | Term::Cjk(w) => w.as_str(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> Vec<String> {
        index_tokens(text).into_iter().collect()
    }

    fn finds(query: &str, text: &str) -> bool {
        let query = Query::parse(query).expect("query");
        let indexed = index_tokens(text);
        // What the index proposes, then the check of the text.
        query.tokens().iter().all(|t| indexed.contains(t)) && query.matches(text)
    }

    #[test]
    fn latin_words_are_case_insensitive_and_normalized() {
        assert_eq!(
            tokens("Deploy the API, 2nd try!"),
            ["2nd", "api", "deploy", "the", "try"]
        );
        assert_eq!(tokens("ＲＵＳＴ Straße ÉCOLE"), ["rust", "straße", "école"]);
        assert!(finds("rust", "I like RUST."));
        assert!(finds("ÉCOLE", "l'école"));
        assert!(finds("2024", "release 2024-11-25"));
        // Words, not substrings.
        assert!(!finds("deploy", "deployment done"));
        assert!(!finds("rust", "trust me"));
    }

    #[test]
    fn korean_runs_are_found_by_any_substring() {
        assert_eq!(
            tokens("학교에 갔다"),
            ["갔", "갔다", "교", "교에", "다", "에", "학", "학교"]
        );
        assert!(finds("학교", "학교에 갔다"));
        assert!(finds("갔다", "학교에 갔다"));
        assert!(finds("학교에", "어제 학교에 갔다"));
        assert!(finds("교", "학교에 갔다"), "one character");
        assert!(finds("학교 갔다", "학교에 갔다"), "two terms, both present");
        assert!(!finds("학교 집", "학교에 갔다"), "two terms, one missing");
        // Both bigrams are there, but not the run: the check of the text refuses it.
        assert!(!finds("교에서", "학교 에서 교에"));
        assert!(!finds("학교에서", "학교 에서"));
        // Odd lengths are covered to the end.
        assert!(finds("대한민국", "대한민국 만세"));
        assert!(finds("한민국", "대한민국 만세"));
        assert!(!finds("한민족", "대한민국 만세"));
    }

    #[test]
    fn mixed_scripts_split_at_the_script_boundary() {
        assert_eq!(tokens("3시에"), ["3", "시", "시에", "에"]);
        assert!(finds("API", "API서버가 죽었다"));
        assert!(finds("서버", "API서버가 죽었다"));
        assert!(finds("3", "3시에 만나요"));
        assert!(finds("東京", "明日東京へ行きます"));
        assert!(finds("とうきょう", "とうきょうへ"));
        // Compatibility jamo and half-width forms normalize like their plain forms.
        assert!(finds("ﾃｽﾄ", "テスト"));
    }

    #[test]
    fn long_words_are_capped_but_compared_whole() {
        let long = "a".repeat(100);
        let indexed = index_tokens(&long);
        assert!(indexed.iter().all(|t| t.len() <= MAX_TOKEN_BYTES));
        assert!(finds(&long, &long));
        let longer = "a".repeat(101);
        assert!(!finds(&long, &longer), "same cap, other word");
        // A cap inside a multi-byte character stays on a boundary.
        let accents = "é".repeat(40);
        assert!(index_tokens(&accents)
            .iter()
            .all(|t| t.len() <= MAX_TOKEN_BYTES));
        assert!(finds(&accents, &accents));
    }

    #[test]
    fn bad_queries_are_refused() {
        assert_eq!(Query::parse(""), Err(QueryError::Empty));
        assert_eq!(Query::parse("  ?! -- "), Err(QueryError::Empty));
        assert_eq!(Query::parse(&"a".repeat(257)), Err(QueryError::TooLong));
        let many: Vec<String> = (0..17).map(|i| format!("w{i}")).collect();
        assert_eq!(Query::parse(&many.join(" ")), Err(QueryError::TooManyTerms));
        let query = Query::parse("Rust rust RUST 학교").expect("query");
        assert_eq!(query.terms().collect::<Vec<_>>(), ["rust", "학교"]);
    }
}
