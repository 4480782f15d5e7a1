//! The search index, measured where it lives: sled trees written as the server's
//! flush writes them (a chunk of messages, with or without their index entries, then
//! a flush), and queries as the server runs them (the index proposes, the stored
//! text decides). Synthetic text: Korean sentences of Zipf-distributed words with
//! particles stuck to them, English sentences of Zipf-distributed words.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::sled_index::{self as index, Position, SearchBounds};
use daehwa::search::Query;
use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::api::BoxError;

/// Syllables common in Korean text, for making words.
const SYLLABLES: &str = "가나다라마바사아자차카타파하고노도로모보소오조초코토포호구누두루무부수우주추쿠투푸후기니디리미비시이지치키티피히개내대래매배새애재채캐태패해게네데레메베세에제체케테페헤학교회사람일시간오늘내일어제생각문제우리너희그것이것저것정말진짜한국서울부산회의자료보고서프로젝트개발서버배포테스트코드리뷰점심저녁주말월화수목금토";
/// Particles stuck to Korean words.
const PARTICLES: [&str; 13] = [
    "", "", "", "은", "는", "이", "가", "을", "를", "에", "에서", "으로", "도",
];
const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyz";

/// A small deterministic PRNG (xorshift64*), so that every run writes the same text.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// An index in `0..n`, Zipf-like (s ≈ 1): rank r has weight 1/(r+1).
    fn zipf(&mut self, n: usize) -> usize {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        let x = ((n as f64 + 1.0).ln() * u).exp() - 1.0;
        (x as usize).min(n - 1)
    }
}

struct Vocabulary {
    korean: Vec<String>,
    english: Vec<String>,
}

impl Vocabulary {
    fn new(rng: &mut Rng) -> Self {
        let syllables: Vec<char> = SYLLABLES.chars().collect();
        let korean = (0..20_000)
            .map(|_| {
                let len = 1 + rng.below(3) + usize::from(rng.below(4) == 0);
                (0..len)
                    .map(|_| syllables[rng.below(syllables.len())])
                    .collect()
            })
            .collect();
        let english = (0..20_000)
            .map(|_| {
                let len = 2 + rng.below(8);
                (0..len)
                    .map(|_| LETTERS[rng.below(LETTERS.len())] as char)
                    .collect()
            })
            .collect();
        Self { korean, english }
    }

    /// A message: 70 % Korean (with some English words), 30 % English.
    fn message(&self, rng: &mut Rng) -> String {
        let words = 4 + rng.below(14);
        let korean = rng.below(10) < 7;
        let mut text = String::new();
        for i in 0..words {
            if i > 0 {
                text.push(' ');
            }
            if korean && rng.below(8) != 0 {
                text.push_str(&self.korean[rng.zipf(self.korean.len())]);
                text.push_str(PARTICLES[rng.below(PARTICLES.len())]);
            } else {
                text.push_str(&self.english[rng.zipf(self.english.len())]);
            }
        }
        text
    }
}

fn message_key(room: u64, msg: u64) -> [u8; 16] {
    let mut k = [0; 16];
    k[..8].copy_from_slice(&room.to_be_bytes());
    k[8..].copy_from_slice(&msg.to_be_bytes());
    k
}

/// What one build of the trees cost.
struct Build {
    seconds: f64,
    db_bytes: u64,
}

/// Writes `messages` messages over `rooms` rooms into a fresh database at `dir`, in
/// chunks of `chunk` (each: index entries, then messages, one insert at a time,
/// then a flush, as the server's flush does), the index only when `indexed`.
fn build(
    dir: &Path,
    messages: u64,
    rooms: u64,
    chunk: u64,
    indexed: bool,
) -> Result<Build, BoxError> {
    let _ = std::fs::remove_dir_all(dir);
    let db = sled::Config::new().path(dir).open()?;
    let texts = db.open_tree("roomid_msgid_message")?;
    let entries = db.open_tree("roomid_token_time_msgid_search")?;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let vocabulary = Vocabulary::new(&mut rng);
    // Generated ahead, so that only the writes are timed.
    let mut pending: Vec<(u64, u64, u64, String)> = Vec::with_capacity(chunk as usize);
    let started_at: u64 = 1_780_000_000_000;
    let mut elapsed = Duration::ZERO;
    for n in 0..messages {
        let room = 1 + n % rooms;
        let msg = 1 + n / rooms;
        pending.push((room, msg, started_at + n * 10, vocabulary.message(&mut rng)));
        if pending.len() as u64 == chunk || n + 1 == messages {
            let t = Instant::now();
            if indexed {
                for (room, msg, at, text) in &pending {
                    for k in index::entries(*room, Position { at: *at, msg: *msg }, text) {
                        entries.insert(k, Vec::new())?;
                    }
                }
            }
            for (room, msg, _, text) in &pending {
                // About a stored record's size: the text and ~40 bytes of fields.
                let mut value = Vec::with_capacity(text.len() + 40);
                value.extend_from_slice(&[0; 40]);
                value.extend_from_slice(text.as_bytes());
                texts.insert(message_key(*room, *msg), value)?;
            }
            db.flush()?;
            elapsed += t.elapsed();
            pending.clear();
        }
    }
    db.flush()?;
    Ok(Build {
        seconds: elapsed.as_secs_f64(),
        db_bytes: db.size_on_disk()?,
    })
}

/// The same build, the index in tantivy instead of sled: each chunk's messages
/// inserted into sled and flushed, then their documents (room, msg, time, and the
/// same tokens as daehwa's index, pre-split) added and committed (tantivy fsyncs a
/// new segment; merges run on its own threads).
fn build_tantivy(
    dir: &Path,
    messages: u64,
    rooms: u64,
    chunk: u64,
    commit_every: u64,
) -> Result<Build, BoxError> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("tantivy"))?;
    let db = sled::Config::new().path(dir.join("sled")).open()?;
    let texts = db.open_tree("roomid_msgid_message")?;
    let (index, fields) = tantivy_index(&dir.join("tantivy"), true)?;
    let mut writer: tantivy::IndexWriter = index.writer_with_num_threads(1, 50_000_000)?;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let vocabulary = Vocabulary::new(&mut rng);
    let mut pending: Vec<(u64, u64, u64, String)> = Vec::with_capacity(chunk as usize);
    let started_at: u64 = 1_780_000_000_000;
    let mut elapsed = Duration::ZERO;
    let mut chunks = 0u64;
    for n in 0..messages {
        let room = 1 + n % rooms;
        let msg = 1 + n / rooms;
        pending.push((room, msg, started_at + n * 10, vocabulary.message(&mut rng)));
        if pending.len() as u64 == chunk || n + 1 == messages {
            let t = Instant::now();
            for (room, msg, _, text) in &pending {
                let mut value = Vec::with_capacity(text.len() + 40);
                value.extend_from_slice(&[0; 40]);
                value.extend_from_slice(text.as_bytes());
                texts.insert(message_key(*room, *msg), value)?;
            }
            db.flush()?;
            for (room, msg, at, text) in &pending {
                let tokens: Vec<String> = daehwa::search::index_tokens(text).into_iter().collect();
                let mut document = tantivy::TantivyDocument::default();
                document.add_u64(fields.room, *room);
                document.add_u64(fields.msg, *msg);
                document.add_u64(fields.at, *at);
                document.add_text(fields.tokens, tokens.join(" "));
                writer.add_document(document)?;
            }
            chunks += 1;
            if chunks.is_multiple_of(commit_every) || n + 1 == messages {
                writer.commit()?;
            }
            elapsed += t.elapsed();
            pending.clear();
        }
    }
    writer.wait_merging_threads()?;
    db.flush()?;
    Ok(Build {
        seconds: elapsed.as_secs_f64(),
        db_bytes: dir_bytes(&dir.join("tantivy"))? + db.size_on_disk()?,
    })
}

fn dir_bytes(dir: &Path) -> Result<u64, BoxError> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let meta = entry?.metadata()?;
        if meta.is_file() {
            total += meta.len();
        }
    }
    Ok(total)
}

struct Fields {
    room: tantivy::schema::Field,
    msg: tantivy::schema::Field,
    at: tantivy::schema::Field,
    tokens: tantivy::schema::Field,
}

fn tantivy_index(dir: &Path, create: bool) -> Result<(tantivy::Index, Fields), BoxError> {
    use tantivy::schema::{IndexRecordOption, TextFieldIndexing, TextOptions, FAST, INDEXED};
    let mut builder = tantivy::schema::Schema::builder();
    let room = builder.add_u64_field("room", INDEXED | FAST);
    let msg = builder.add_u64_field("msg", FAST);
    let at = builder.add_u64_field("at", FAST);
    let tokens = builder.add_text_field(
        "tokens",
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer("whitespace")
                .set_index_option(IndexRecordOption::Basic),
        ),
    );
    let schema = builder.build();
    let index = if create {
        tantivy::Index::create_in_dir(dir, schema)?
    } else {
        tantivy::Index::open_in_dir(dir)?
    };
    Ok((
        index,
        Fields {
            room,
            msg,
            at,
            tokens,
        },
    ))
}

/// [`query`] against the tantivy build: every token and one of the rooms must
/// match, newest first by the time's fast field; the stored text decides.
fn query_tantivy(
    dir: &Path,
    member_of: u64,
    words: &[String],
    queries: usize,
    limit: usize,
) -> Result<(Histogram<u64>, f64), BoxError> {
    use tantivy::query::{BooleanQuery, Occur, TermQuery};
    use tantivy::schema::IndexRecordOption;
    let db = sled::Config::new().path(dir.join("sled")).open()?;
    let texts = db.open_tree("roomid_msgid_message")?;
    let (index, fields) = tantivy_index(&dir.join("tantivy"), false)?;
    let reader = index.reader()?;
    let searcher = reader.searcher();
    let mut histogram = Histogram::<u64>::new(3)?;
    let mut found = 0usize;
    let mut rng = Rng(7);
    for pass in 0..2 {
        let mut rng_pass = Rng(rng.next());
        for _ in 0..queries {
            let word = &words[rng_pass.zipf(words.len().min(2000))];
            let t = Instant::now();
            let query = Query::parse(word)?;
            let mut clauses: Vec<(Occur, Box<dyn tantivy::query::Query>)> = query
                .tokens()
                .iter()
                .map(|token| {
                    let term = tantivy::Term::from_field_text(fields.tokens, token);
                    (
                        Occur::Must,
                        Box::new(TermQuery::new(term, IndexRecordOption::Basic))
                            as Box<dyn tantivy::query::Query>,
                    )
                })
                .collect();
            let rooms: Vec<(Occur, Box<dyn tantivy::query::Query>)> = (1..=member_of)
                .map(|room| {
                    let term = tantivy::Term::from_field_u64(fields.room, room);
                    (
                        Occur::Should,
                        Box::new(TermQuery::new(term, IndexRecordOption::Basic))
                            as Box<dyn tantivy::query::Query>,
                    )
                })
                .collect();
            clauses.push((Occur::Must, Box::new(BooleanQuery::new(rooms))));
            let top = searcher.search(
                &BooleanQuery::new(clauses),
                &tantivy::collector::TopDocs::with_limit(limit * 2)
                    .order_by_fast_field::<u64>("at", tantivy::Order::Desc),
            )?;
            let mut hits = 0;
            for (_, address) in top {
                let segment = searcher.segment_reader(address.segment_ord);
                let room = segment.fast_fields().u64("room")?.first(address.doc_id);
                let msg = segment.fast_fields().u64("msg")?.first(address.doc_id);
                let (Some(room), Some(msg)) = (room, msg) else {
                    continue;
                };
                let Some(value) = texts.get(message_key(room, msg))? else {
                    continue;
                };
                let text = std::str::from_utf8(&value[40..]).unwrap_or("");
                if query.matches(text) {
                    hits += 1;
                    if hits == limit {
                        break;
                    }
                }
            }
            let micros = t.elapsed().as_micros() as u64;
            if pass == 1 {
                histogram.record(micros.max(1))?;
                found += hits;
            }
        }
    }
    Ok((histogram, found as f64 / queries as f64))
}

/// Runs `queries` searches for words drawn from `words` in the first `member_of`
/// rooms, warm, after one unmeasured pass; the latency histogram (µs) and the mean
/// number of results.
fn query(
    dir: &Path,
    member_of: u64,
    words: &[String],
    queries: usize,
    limit: usize,
) -> Result<(Histogram<u64>, f64), BoxError> {
    let db = sled::Config::new().path(dir).open()?;
    let texts = db.open_tree("roomid_msgid_message")?;
    let entries = db.open_tree("roomid_token_time_msgid_search")?;
    let rooms: Vec<u64> = (1..=member_of).collect();
    let mut histogram = Histogram::<u64>::new(3)?;
    let mut found = 0usize;
    let mut rng = Rng(7);
    for pass in 0..2 {
        let mut rng_pass = Rng(rng.next());
        for _ in 0..queries {
            let word = &words[rng_pass.zipf(words.len().min(2000))];
            let t = Instant::now();
            let query = Query::parse(word)?;
            let page = index::search(
                &entries,
                &rooms,
                &query.tokens(),
                None,
                SearchBounds {
                    limit,
                    budget: 1000,
                },
                |room, msg| {
                    let Some(value) = texts.get(message_key(room, msg))? else {
                        return Ok(None);
                    };
                    let text = std::str::from_utf8(&value[40..]).unwrap_or("");
                    Ok(query.matches(text).then_some((room, msg)))
                },
            )?;
            let micros = t.elapsed().as_micros() as u64;
            if pass == 1 {
                histogram.record(micros.max(1))?;
                found += page.hits.len();
            }
        }
    }
    Ok((histogram, found as f64 / queries as f64))
}

fn latency(h: &Histogram<u64>) -> Value {
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    json!({ "p50_ms": ms(0.5), "p99_ms": ms(0.99), "max_ms": h.max() as f64 / 1000.0 })
}

/// The whole search scenario: persistence with and without the index, index size
/// per message, query latency for one Korean and one English word.
pub fn run(
    dir: &Path,
    messages: u64,
    rooms: u64,
    member_of: u64,
    queries: usize,
    engine: &str,
    commit_every: u64,
) -> Result<Value, BoxError> {
    let chunk = 1000;
    let plain = build(&dir.join("plain"), messages, rooms, chunk, false)?;
    if engine == "tantivy" {
        let indexed = build_tantivy(&dir.join("tantivy"), messages, rooms, chunk, commit_every)?;
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let vocabulary = Vocabulary::new(&mut rng);
        let at = dir.join("tantivy");
        let (korean, korean_found) =
            query_tantivy(&at, member_of, &vocabulary.korean, queries, 20)?;
        let (english, english_found) =
            query_tantivy(&at, member_of, &vocabulary.english, queries, 20)?;
        return Ok(json!({
            "scenario": "search",
            "engine": "tantivy",
            "chunks_per_commit": commit_every,
            "messages": messages,
            "rooms": rooms,
            "member_of": member_of,
            "persist_plain_msgs_per_s": messages as f64 / plain.seconds,
            "persist_indexed_msgs_per_s": messages as f64 / indexed.seconds,
            "persist_ratio": plain.seconds / indexed.seconds,
            "db_bytes_plain": plain.db_bytes,
            "db_bytes_indexed": indexed.db_bytes,
            "index_bytes_per_message": (indexed.db_bytes.saturating_sub(plain.db_bytes)) as f64 / messages as f64,
            "korean": { "latency": latency(&korean), "mean_results": korean_found },
            "english": { "latency": latency(&english), "mean_results": english_found },
        }));
    }
    let indexed = build(&dir.join("indexed"), messages, rooms, chunk, true)?;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let vocabulary = Vocabulary::new(&mut rng);
    let (korean, korean_found) = query(
        &dir.join("indexed"),
        member_of,
        &vocabulary.korean,
        queries,
        20,
    )?;
    let (english, english_found) = query(
        &dir.join("indexed"),
        member_of,
        &vocabulary.english,
        queries,
        20,
    )?;
    let result = json!({
        "scenario": "search",
        "engine": "sled",
        "messages": messages,
        "rooms": rooms,
        "member_of": member_of,
        "persist_plain_msgs_per_s": messages as f64 / plain.seconds,
        "persist_indexed_msgs_per_s": messages as f64 / indexed.seconds,
        "persist_ratio": plain.seconds / indexed.seconds,
        "db_bytes_plain": plain.db_bytes,
        "db_bytes_indexed": indexed.db_bytes,
        "index_bytes_per_message": (indexed.db_bytes.saturating_sub(plain.db_bytes)) as f64 / messages as f64,
        "korean": { "latency": latency(&korean), "mean_results": korean_found },
        "english": { "latency": latency(&english), "mean_results": english_found },
    });
    Ok(result)
}
