//! The embedded store's part of [`Access`]: the API's tokens, one row each in `tokens`
//! (name, the secret's SHA-256, last use, the rest as JSON).

use super::*;
use crate::store::{Access, TokenRecord};

#[async_trait]
impl Access for EmbeddedStore {
    async fn create_token(&self, token: &TokenRecord) -> StoreResult<bool> {
        let doing = "recording a token";
        let token = TokenRecord {
            last_used: None,
            ..token.clone().truncated_to_ms()
        };
        let doc = serde_json::to_string(&token).map_err(|e| StoreError::invalid(doing, e))?;
        self.run(doing, move |conn| {
            // The name and the hash are both unique: either taken leaves the table as it was.
            let inserted = conn
                .prepare_cached(
                    "INSERT OR IGNORE INTO tokens (name, hash, doc) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![token.name, token.hash, doc])?;
            Ok(inserted == 1)
        })
        .await
    }

    async fn list_tokens(&self) -> StoreResult<Vec<TokenRecord>> {
        let rows = self
            .run("listing tokens", |conn| {
                conn.prepare_cached("SELECT doc, last_used FROM tokens ORDER BY name")?
                    .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                    .collect::<rusqlite::Result<Vec<(String, Option<i64>)>>>()
            })
            .await?;
        rows.iter()
            .map(|(doc, last_used)| decode_token(doc, *last_used))
            .collect()
    }

    async fn token_by_hash(&self, hash: &str) -> StoreResult<Option<TokenRecord>> {
        let hash = hash.to_string();
        let row = self
            .run("looking up a token", move |conn| {
                conn.prepare_cached("SELECT doc, last_used FROM tokens WHERE hash = ?1")?
                    .query_row([hash], |row| Ok((row.get(0)?, row.get(1)?)))
                    .optional()
            })
            .await?;
        row.map(|(doc, last_used): (String, Option<i64>)| decode_token(&doc, last_used))
            .transpose()
    }

    async fn touch_token(&self, name: &str, at: DateTime<Utc>) -> StoreResult<bool> {
        let (name, at) = (name.to_string(), to_ms(at));
        self.run("recording a token's use", move |conn| {
            let touched = conn
                .prepare_cached(
                    "UPDATE tokens SET last_used = MAX(COALESCE(last_used, ?2), ?2) WHERE name = ?1",
                )?
                .execute(params![name, at])?;
            Ok(touched == 1)
        })
        .await
    }

    async fn revoke_token(&self, name: &str) -> StoreResult<bool> {
        let name = name.to_string();
        self.run("revoking a token", move |conn| {
            let deleted = conn
                .prepare_cached("DELETE FROM tokens WHERE name = ?1")?
                .execute([name])?;
            Ok(deleted == 1)
        })
        .await
    }
}

/// A `tokens` row: its `doc`, with `last_used` from its own column.
fn decode_token(doc: &str, last_used: Option<i64>) -> StoreResult<TokenRecord> {
    let mut token: TokenRecord =
        serde_json::from_str(doc).map_err(|e| StoreError::corrupt("tokens", e))?;
    let what = format!("token {}", token.name);
    token.last_used = last_used.map(|ms| from_ms(&what, ms)).transpose()?;
    Ok(token)
}
