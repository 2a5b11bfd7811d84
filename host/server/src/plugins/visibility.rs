//! Per-customer visibility policies: a customer that names a
//! visibility-policy plugin has it decide who sees its objects, a page at a
//! time. Super users are never filtered, and a policy only ever decides about
//! its own customer's objects.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use pop_core::visibility::{Caller, ObjectPage, can_read_document};
use pop_core::{Customer, ObjectKind, PluginKind};
use pop_store::{Document, Query};
use pop_wasm::convert::object_kind;

use super::{Answerer, PluginHost};
use crate::domain::body::{from_document, str_field};
use crate::error::{ApiError, ApiResult};

impl PluginHost {
    /// Customers whose objects are decided by a policy plugin.
    pub fn policy_owners(&self) -> Arc<HashSet<String>> {
        self.policy_owners.load_full()
    }

    /// Re-read which customers name a visibility policy (after customer writes).
    pub async fn refresh_policy_owners(&self) -> ApiResult<()> {
        let customers = self.store.query(ObjectKind::Customer, &Query::all(), None).await?;
        let owners: HashSet<String> = customers
            .iter()
            .filter(|c| {
                c.get("visibilityPolicy")
                    .and_then(|v| v.as_str())
                    .is_some_and(|v| !v.is_empty())
            })
            .filter_map(|c| str_field(c, "id").map(String::from))
            .collect();
        self.policy_owners.store(Arc::new(owners));
        Ok(())
    }

    /// Keep the documents `caller` may see. Documents of customers with a
    /// policy are decided by it (one call per customer per page); the rest
    /// by POP's rules.
    pub async fn filter_visible(
        &self,
        caller: &Caller,
        kind: ObjectKind,
        docs: Vec<Document>,
    ) -> ApiResult<Vec<Document>> {
        if caller.is_global() {
            return Ok(docs);
        }
        if object_kind(kind).is_none() {
            // Kinds no policy decides about (plugins, queues): POP's rules only.
            return Ok(docs
                .into_iter()
                .filter(|d| can_read_document(caller, kind, d))
                .collect());
        }
        let owners = self.policy_owners();
        let mut by_owner: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut keep = vec![false; docs.len()];
        for (i, doc) in docs.iter().enumerate() {
            match str_field(doc, "customerId").filter(|o| owners.contains(*o)) {
                Some(owner) => by_owner.entry(owner.to_string()).or_default().push(i),
                None => keep[i] = can_read_document(caller, kind, doc),
            }
        }
        for (owner, indices) in by_owner {
            let page: Vec<Document> = indices.iter().map(|&i| docs[i].clone()).collect();
            let decisions = self.decide_page(caller, kind, &owner, page).await?;
            for (i, allowed) in indices.into_iter().zip(decisions) {
                keep[i] = allowed;
            }
        }
        Ok(docs
            .into_iter()
            .zip(keep)
            .filter_map(|(doc, k)| k.then_some(doc))
            .collect())
    }

    async fn decide_page(
        &self,
        caller: &Caller,
        kind: ObjectKind,
        owner: &str,
        page: Vec<Document>,
    ) -> ApiResult<Vec<bool>> {
        let native =
            move |caller: &Caller, page: &[Document]| page.iter().map(|d| can_read_document(caller, kind, d)).collect();
        let customer: Option<Customer> = match self.store.get(ObjectKind::Customer, owner).await? {
            Some(doc) => Some(from_document(doc)?),
            None => None,
        };
        let policy = customer.and_then(|c| c.visibility_policy).filter(|p| !p.is_empty());
        let Some(slot) = policy.and_then(|name| self.resolve(owner, PluginKind::VisibilityPolicy, &name)) else {
            return Ok(native(caller, &page));
        };
        let Some(wit_kind) = object_kind(kind) else {
            return Ok(native(caller, &page));
        };
        let runtime = self.runtime.clone();
        let caller = caller.clone();
        // Warm instances are per tenant: the policy's owner.
        let owner = owner.to_string();
        let (decisions, (by, elapsed, failures)) = tokio::task::spawn_blocking(move || {
            // Straight from the documents into the page the policy reads.
            let objects = ObjectPage::from_documents(&page);
            let wit_caller = pop_wasm::types::Caller::from(&caller);
            let mut failures = Vec::new();
            let started = Instant::now();
            let answer = slot.cell.call(
                |plugin| {
                    let on = pop_wasm::InstanceFor::Tenant(&owner);
                    runtime.decide_visibility_page(plugin, on, &wit_caller, wit_kind, &objects)
                },
                || native(&caller, &page),
                &mut |plugin, failure| failures.push((slot.label(plugin), failure.clone())),
            );
            (answer.value, (Answerer::from(&answer.by), started.elapsed(), failures))
        })
        .await
        .map_err(|e| ApiError::Internal(format!("visibility task failed: {e}")))?;
        self.account(PluginKind::VisibilityPolicy, by, elapsed, &failures);
        Ok(decisions)
    }
}
