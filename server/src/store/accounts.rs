//! Accounts: a username and an argon2id password on a learner who had none, so the progress
//! made anonymously is kept. Logging in from an anonymous session merges that session's
//! progress into the account.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};

use super::{LearnerId, Store};

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("a username has 3 to 32 letters, digits, dots, dashes or underscores, and starts with a letter or digit")]
    InvalidUsername,
    #[error("a password needs at least 8 characters (and at most 1024), and must differ from the username")]
    WeakPassword,
    #[error("the username {0} is taken")]
    UsernameTaken(String),
    #[error("you already have an account; log out first to create another")]
    AlreadyHasAccount,
    #[error("wrong username or password")]
    BadCredentials,
    #[error("too many failed attempts for this username; try again in a few minutes")]
    TooManyAttempts,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for AccountError {
    fn from(e: sqlx::Error) -> Self {
        AccountError::Internal(e.into())
    }
}

fn valid_username(name: &str) -> bool {
    (3..=32).contains(&name.len())
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

async fn hash(password: String) -> Result<String, AccountError> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| AccountError::Internal(anyhow::anyhow!("hashing a password: {e}")))
    })
    .await
    .map_err(|e| AccountError::Internal(e.into()))?
}

async fn verify(password: String, phc: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&phc)
            .map(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// Verifying against this when the username does not exist keeps the answer's timing from
/// telling which usernames exist.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    Argon2::default()
        .hash_password(uuid::Uuid::new_v4().to_string().as_bytes())
        .map(|h| h.to_string())
        .unwrap_or_default()
});

/// Failed logins per username, in a sliding window.
#[derive(Default)]
pub(super) struct Throttle {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

const MAX_FAILURES: u32 = 10;
const WINDOW: Duration = Duration::from_secs(15 * 60);

impl Throttle {
    fn allowed(&self, user: &str) -> bool {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, (_, since)| since.elapsed() < WINDOW);
        map.get(user).is_none_or(|(n, _)| *n < MAX_FAILURES)
    }
    fn failed(&self, user: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(user.to_string()).or_insert((0, Instant::now())).0 += 1;
    }
    fn succeeded(&self, user: &str) {
        self.failures.lock().unwrap_or_else(|e| e.into_inner()).remove(user);
    }
}

impl Store {
    /// Turns the (anonymous) learner `id` into an account, keeping its progress.
    pub async fn create_account(&self, id: &LearnerId, username: &str, password: &str) -> Result<(), AccountError> {
        let username = username.trim();
        if !valid_username(username) {
            return Err(AccountError::InvalidUsername);
        }
        if password.chars().count() < 8 || password.len() > 1024 || password.eq_ignore_ascii_case(username) {
            return Err(AccountError::WeakPassword);
        }
        if self.learner(id).await?.username.is_some() {
            return Err(AccountError::AlreadyHasAccount);
        }
        let phc = hash(password.to_string()).await?;
        let mut tx = self.pool.begin().await?;
        self.ensure_learner(&mut tx, id).await?;
        let result =
            sqlx::query("UPDATE learners SET username = ?, password_hash = ? WHERE id = ? AND username IS NULL")
                .bind(username)
                .bind(&phc)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await;
        match result {
            Ok(r) if r.rows_affected() == 1 => {}
            Ok(_) => return Err(AccountError::AlreadyHasAccount),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(AccountError::UsernameTaken(username.to_string()));
            }
            Err(e) => return Err(e.into()),
        }
        tx.commit().await?;
        self.forget(id);
        Ok(())
    }

    /// Checks a username and password and returns the account's learner id. The progress of
    /// `current`, if it is an anonymous learner, moves into the account.
    pub async fn login(&self, current: &LearnerId, username: &str, password: &str) -> Result<LearnerId, AccountError> {
        let key = username.trim().to_ascii_lowercase();
        if !self.throttle.allowed(&key) {
            return Err(AccountError::TooManyAttempts);
        }
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT id, password_hash FROM learners WHERE username = ? AND password_hash IS NOT NULL")
                .bind(username.trim())
                .fetch_optional(&self.pool)
                .await?;
        let (account, phc) = match row {
            Some((id, phc)) => (LearnerId::parse(&id), phc),
            None => (None, DUMMY_HASH.clone()),
        };
        let ok = verify(password.to_string(), phc).await;
        let Some(account) = account.filter(|_| ok) else {
            self.throttle.failed(&key);
            return Err(AccountError::BadCredentials);
        };
        self.throttle.succeeded(&key);
        if &account != current && self.learner(current).await?.username.is_none() {
            self.merge_into(current, &account).await?;
        }
        Ok(account)
    }

    /// Moves an anonymous learner's progress into an account and removes the anonymous one.
    async fn merge_into(&self, from: &LearnerId, into: &LearnerId) -> Result<(), AccountError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO lesson_progress (learner_id, lesson, opened_at, completed_at)
             SELECT ?, lesson, opened_at, completed_at FROM lesson_progress WHERE learner_id = ?
             ON CONFLICT (learner_id, lesson) DO UPDATE SET
               opened_at = min(opened_at, excluded.opened_at),
               completed_at = coalesce(completed_at, excluded.completed_at)",
        )
        .bind(into.as_str())
        .bind(from.as_str())
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM learners WHERE id = ? AND username IS NULL")
            .bind(from.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.forget(from);
        self.forget(into);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accounts_keep_and_merge_progress() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        let anon = LearnerId::random();
        store.set_completed(&anon, "intro/what", true).await.unwrap();
        store.create_account(&anon, "ada", "correct horse").await.unwrap();
        assert_eq!(store.learner(&anon).await.unwrap().username.as_deref(), Some("ada"));
        assert!(store.learner(&anon).await.unwrap().completed("intro/what"));
        assert!(matches!(
            store.create_account(&anon, "ada2", "correct horse").await,
            Err(AccountError::AlreadyHasAccount)
        ));

        let other = LearnerId::random();
        assert!(matches!(
            store.create_account(&other, "ADA", "something long").await,
            Err(AccountError::UsernameTaken(_))
        ));
        assert!(matches!(
            store.create_account(&other, "x", "something long").await,
            Err(AccountError::InvalidUsername)
        ));
        assert!(matches!(
            store.create_account(&other, "bob", "short").await,
            Err(AccountError::WeakPassword)
        ));

        // Another browser, anonymous, does a lesson and then logs in: both are kept.
        let laptop = LearnerId::random();
        store.set_completed(&laptop, "intro/vms", true).await.unwrap();
        assert!(matches!(
            store.login(&laptop, "ada", "wrong password").await,
            Err(AccountError::BadCredentials)
        ));
        assert!(matches!(
            store.login(&laptop, "nobody", "wrong password").await,
            Err(AccountError::BadCredentials)
        ));
        let id = store.login(&laptop, "Ada", "correct horse").await.unwrap();
        assert_eq!(id, anon);
        let merged = store.learner(&id).await.unwrap();
        assert!(merged.completed("intro/what") && merged.completed("intro/vms"));
        assert!(store.learner(&laptop).await.unwrap().lessons.is_empty());
        let hash: String = sqlx::query_scalar("SELECT password_hash FROM learners WHERE username = 'ada'")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
    }

    #[tokio::test]
    async fn repeated_failures_are_throttled() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        let me = LearnerId::random();
        for _ in 0..MAX_FAILURES {
            let _ = store.login(&me, "eve", "guess-guess").await;
        }
        assert!(matches!(
            store.login(&me, "eve", "guess-guess").await,
            Err(AccountError::TooManyAttempts)
        ));
    }
}
