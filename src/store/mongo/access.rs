//! The MongoDB store's part of [`Access`]: the API's tokens, one document each in `tokens`
//! (`_id` the name, `hash` unique).

use super::*;
use crate::store::{Access, TokenRecord};

#[async_trait]
impl Access for MongoStore {
    async fn create_token(&self, token: &TokenRecord) -> StoreResult<bool> {
        let token = TokenRecord {
            last_used: None,
            ..token.clone().truncated_to_ms()
        };
        // `_id` and `hash` are unique: an insert that collides with either changes nothing.
        match self.collection("tokens").insert_one(encode(&token)?).await {
            Ok(_) => Ok(true),
            Err(e) if is_duplicate_key(&e) => Ok(false),
            Err(e) => Err(self.err("recording a token")(e)),
        }
    }

    async fn list_tokens(&self) -> StoreResult<Vec<TokenRecord>> {
        let doing = "listing tokens";
        let docs = self
            .find_all("tokens", doc! {}, doc! { "_id": 1 }, None, doing)
            .await?;
        docs.iter().map(decode).collect()
    }

    async fn token_by_hash(&self, hash: &str) -> StoreResult<Option<TokenRecord>> {
        let doing = "looking up a token";
        let docs = self
            .find_all(
                "tokens",
                doc! { "hash": hash },
                doc! { "_id": 1 },
                Some(1),
                doing,
            )
            .await?;
        docs.first().map(decode).transpose()
    }

    async fn touch_token(&self, name: &str, at: DateTime<Utc>) -> StoreResult<bool> {
        let doing = "recording a token's use";
        let at = time(at);
        let coll = self.collection("tokens");
        // Only forward: a use recorded later (by another daemon) is never moved back.
        let updated = coll
            .update_one(
                doc! { "_id": name, "$or": [
                    { "last_used": { "$exists": false } },
                    { "last_used": Bson::Null },
                    { "last_used": { "$lt": at.clone() } },
                ] },
                doc! { "$set": { "last_used": at } },
            )
            .await
            .map_err(self.err(doing))?;
        if updated.matched_count == 1 {
            return Ok(true);
        }
        let exists = coll
            .find_one(doc! { "_id": name })
            .await
            .map_err(self.err(doing))?;
        Ok(exists.is_some())
    }

    async fn revoke_token(&self, name: &str) -> StoreResult<bool> {
        let deleted = self
            .collection("tokens")
            .delete_one(doc! { "_id": name })
            .await
            .map_err(self.err("revoking a token"))?;
        Ok(deleted.deleted_count == 1)
    }
}
