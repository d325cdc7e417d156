//! Learners, accounts and progress, kept in SQLite through sqlx.
//!
//! Slipway is the only writer of its database file, so what a learner has done is cached in
//! memory and the cache is updated on every write: a page view costs no query once the
//! learner's progress is loaded.

mod accounts;
mod attempts;

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use quick_cache::sync::Cache;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

pub use accounts::AccountError;
pub use attempts::{Attempt, AttemptRow};

/// A learner's identity: a random UUID, carried in a signed cookie.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LearnerId(String);

impl LearnerId {
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }
    /// Accepts only the canonical UUID form, so a cookie cannot smuggle anything else in.
    pub fn parse(s: &str) -> Option<Self> {
        let uuid = uuid::Uuid::parse_str(s).ok()?;
        let canonical = uuid.to_string();
        (canonical == s).then_some(Self(canonical))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LessonStatus {
    pub opened_at: i64,
    pub completed_at: Option<i64>,
}

/// What the pages need to know about a learner.
#[derive(Debug, Clone, Default)]
pub struct Learner {
    pub username: Option<String>,
    pub lessons: HashMap<String, LessonStatus>,
}

impl Learner {
    pub fn completed(&self, lesson_key: &str) -> bool {
        self.lessons.get(lesson_key).is_some_and(|s| s.completed_at.is_some())
    }
    pub fn opened(&self, lesson_key: &str) -> bool {
        self.lessons.contains_key(lesson_key)
    }
}

#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
    cache: Arc<Cache<LearnerId, Arc<Learner>>>,
    throttle: Arc<accounts::Throttle>,
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Store {
    /// Opens (creating if needed) `slipway.db` in `data_dir` and applies the migrations.
    pub async fn open(data_dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
        let path = data_dir.join("slipway.db");
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .with_context(|| format!("opening the database {}", path.display()))?;
        sqlx::migrate!("../migrations")
            .run(&pool)
            .await
            .with_context(|| format!("applying migrations to {}", path.display()))?;
        Ok(Store {
            pool,
            cache: Arc::new(Cache::new(100_000)),
            throttle: Arc::new(accounts::Throttle::default()),
        })
    }

    /// The learner's account and progress, from the cache or the database.
    pub async fn learner(&self, id: &LearnerId) -> Result<Arc<Learner>> {
        if let Some(l) = self.cache.get(id) {
            return Ok(l);
        }
        let learner = Arc::new(self.load(id).await?);
        self.cache.insert(id.clone(), learner.clone());
        Ok(learner)
    }

    async fn load(&self, id: &LearnerId) -> Result<Learner> {
        let username: Option<Option<String>> = sqlx::query_scalar("SELECT username FROM learners WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        let rows: Vec<(String, i64, Option<i64>)> =
            sqlx::query_as("SELECT lesson, opened_at, completed_at FROM lesson_progress WHERE learner_id = ?")
                .bind(id.as_str())
                .fetch_all(&self.pool)
                .await?;
        Ok(Learner {
            username: username.flatten(),
            lessons: rows
                .into_iter()
                .map(|(lesson, opened_at, completed_at)| {
                    (
                        lesson,
                        LessonStatus {
                            opened_at,
                            completed_at,
                        },
                    )
                })
                .collect(),
        })
    }

    fn forget(&self, id: &LearnerId) {
        self.cache.remove(id);
    }

    async fn ensure_learner(&self, conn: &mut sqlx::SqliteConnection, id: &LearnerId) -> Result<()> {
        sqlx::query("INSERT OR IGNORE INTO learners (id, created_at) VALUES (?, ?)")
            .bind(id.as_str())
            .bind(now())
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Records that the learner opened a lesson. Free when it is already recorded.
    pub async fn record_opened(&self, id: &LearnerId, lesson_key: &str) -> Result<()> {
        if self.learner(id).await?.opened(lesson_key) {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        self.ensure_learner(&mut tx, id).await?;
        sqlx::query("INSERT OR IGNORE INTO lesson_progress (learner_id, lesson, opened_at) VALUES (?, ?, ?)")
            .bind(id.as_str())
            .bind(lesson_key)
            .bind(now())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.forget(id);
        Ok(())
    }

    /// Marks a lesson done, or not done.
    pub async fn set_completed(&self, id: &LearnerId, lesson_key: &str, done: bool) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        self.ensure_learner(&mut tx, id).await?;
        let t = now();
        sqlx::query(
            "INSERT INTO lesson_progress (learner_id, lesson, opened_at, completed_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (learner_id, lesson) DO UPDATE SET completed_at = excluded.completed_at",
        )
        .bind(id.as_str())
        .bind(lesson_key)
        .bind(t)
        .bind(done.then_some(t))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.forget(id);
        Ok(())
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn progress_is_kept_in_a_real_sqlite_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        let me = LearnerId::random();
        assert!(store.learner(&me).await.unwrap().lessons.is_empty());
        store.record_opened(&me, "intro/what").await.unwrap();
        store.set_completed(&me, "intro/what", true).await.unwrap();
        store.record_opened(&me, "intro/what").await.unwrap();
        let l = store.learner(&me).await.unwrap();
        assert!(l.opened("intro/what") && l.completed("intro/what"));
        drop(store);

        // A fresh process sees the same progress in the file.
        let again = Store::open(dir.path()).await.unwrap();
        assert!(again.learner(&me).await.unwrap().completed("intro/what"));
        again.set_completed(&me, "intro/what", false).await.unwrap();
        assert!(!again.learner(&me).await.unwrap().completed("intro/what"));
        assert!(dir.path().join("slipway.db").is_file());
    }

    #[test]
    fn learner_ids_must_be_canonical_uuids() {
        let id = LearnerId::random();
        assert_eq!(LearnerId::parse(id.as_str()), Some(id));
        assert_eq!(LearnerId::parse("x' OR 1=1"), None);
        assert_eq!(LearnerId::parse("6F9619FF-8B86-D011-B42D-00C04FC964FF"), None);
    }
}
