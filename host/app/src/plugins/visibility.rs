//! Per-customer visibility policies: a customer that names a
//! visibility-policy plugin has it decide who sees its objects, a page at a
//! time. Super users are never filtered, and a policy only ever decides about
//! its own customer's objects.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use pop_core::visibility::{Caller, ObjectPage, can_read_document};
use pop_core::{Customer, ObjectKind, PluginKind};
use pop_ports::{Document, Filter, Query};
use pop_wasm::convert::object_kind;

use super::{Answerer, PluginHost};
use crate::domain::body::{from_document, str_field};
use crate::domain::objects::{self, ListRequest, Listing};
use crate::error::{AppError, AppResult};

impl PluginHost {
    /// Customers whose objects are decided by a policy plugin.
    pub fn policy_owners(&self) -> Arc<HashSet<String>> {
        self.policy_owners.load_full()
    }

    /// Re-read which customers name a visibility policy (after customer writes).
    pub async fn refresh_policy_owners(&self) -> AppResult<()> {
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

    /// A GET as `caller`, when customers' policies may decide about some of
    /// what it finds. The owner of an object always sees it (a policy decides
    /// only for other callers), so only the policies of customers the caller
    /// does not own take part; with none of them, this is the single-pass
    /// scan of [`objects::list`]. Otherwise the objects POP's rules decide
    /// and the objects a policy decides are scanned together, the policies
    /// decide, and the limit and count are taken after every decision: a
    /// tenant's policy never changes what another tenant's listing returns.
    pub async fn list_visible(&self, caller: &Caller, kind: ObjectKind, request: ListRequest) -> AppResult<Listing> {
        let store = self.store.as_ref();
        let deciding: BTreeSet<String> = self
            .policy_owners()
            .iter()
            .filter(|owner| !caller.owns(Some(owner.as_str())))
            .cloned()
            .collect();
        if caller.is_global() || deciding.is_empty() || object_kind(kind).is_none() {
            return objects::list(store, caller, kind, request).await;
        }
        // Objects of a deciding owner are candidates (the policy decides),
        // the rest follow POP's rules; as data, so the store can use them.
        let candidate = Filter::OwnedBy(Arc::new(deciding));
        let is_candidate = |doc: &Document| candidate.admits(kind, doc);
        let sure = Filter::All(vec![
            Filter::Not(Box::new(candidate.clone())),
            Filter::ReadableBy(caller.clone()),
        ]);
        let either = Filter::Any(vec![candidate.clone(), Filter::ReadableBy(caller.clone())]);

        if let Some(id) = &request.id {
            let visible = match store.get(kind, id).await? {
                Some(doc) if is_candidate(&doc) => {
                    let allowed = self.decisions(caller, kind, std::slice::from_ref(&doc)).await?;
                    allowed[0].then_some(doc)
                }
                Some(doc) => can_read_document(caller, kind, &doc).then_some(doc),
                None => None,
            };
            if request.count_only {
                return Ok(Listing::Count(u64::from(visible.is_some())));
            }
            let mut docs = vec![visible.ok_or_else(|| objects::not_found(kind, id))?];
            objects::finish(store, kind, &mut docs, request.fields.as_deref()).await?;
            return Ok(Listing::Objects(docs));
        }

        let unlimited = Query {
            filters: request.query.filters.clone(),
            limit: None,
        };
        if request.count_only {
            let sure_count = store.count(kind, &unlimited, Some(sure)).await?;
            let candidates = store.query(kind, &unlimited, Some(candidate)).await?;
            let granted = self.decisions(caller, kind, &candidates).await?;
            return Ok(Listing::Count(
                sure_count + granted.iter().filter(|g| **g).count() as u64,
            ));
        }

        let limit = request.query.limit.unwrap_or(objects::MAX_LIMIT);
        let mut decided: HashMap<String, bool> = HashMap::new();
        let mut fetch = limit;
        loop {
            let query = Query {
                filters: request.query.filters.clone(),
                limit: Some(fetch),
            };
            let docs = store.query(kind, &query, Some(either.clone())).await?;
            let exhausted = docs.len() < fetch;
            let undecided: Vec<Document> = docs
                .iter()
                .filter(|doc| is_candidate(doc) && !decided.contains_key(str_field(doc, "id").unwrap_or_default()))
                .cloned()
                .collect();
            let verdicts = self.decisions(caller, kind, &undecided).await?;
            for (doc, allowed) in undecided.iter().zip(verdicts) {
                decided.insert(str_field(doc, "id").unwrap_or_default().to_string(), allowed);
            }
            let mut visible: Vec<Document> = docs
                .into_iter()
                .filter(|doc| {
                    !is_candidate(doc) || decided.get(str_field(doc, "id").unwrap_or_default()) == Some(&true)
                })
                .take(limit)
                .collect();
            if visible.len() >= limit || exhausted {
                objects::finish(store, kind, &mut visible, request.fields.as_deref()).await?;
                return Ok(Listing::Objects(visible));
            }
            // Denials pushed visible objects past this scan's end: look
            // further (the decisions so far are kept).
            fetch = fetch.saturating_mul(2);
        }
    }

    /// Whether `caller` may see each of `docs`: its owner always; a
    /// customer's policy decides about that customer's objects (one call
    /// per customer per page); POP's rules decide the rest.
    pub async fn decisions(&self, caller: &Caller, kind: ObjectKind, docs: &[Document]) -> AppResult<Vec<bool>> {
        if caller.is_global() {
            return Ok(vec![true; docs.len()]);
        }
        let owners = self.policy_owners();
        let decided_by_policies = object_kind(kind).is_some();
        let mut by_owner: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut keep = vec![false; docs.len()];
        for (i, doc) in docs.iter().enumerate() {
            let owner = str_field(doc, "customerId");
            match owner.filter(|o| decided_by_policies && owners.contains(*o) && !caller.owns(Some(o))) {
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
        Ok(keep)
    }

    async fn decide_page(
        &self,
        caller: &Caller,
        kind: ObjectKind,
        owner: &str,
        page: Vec<Document>,
    ) -> AppResult<Vec<bool>> {
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
        .map_err(|e| AppError::Internal(format!("visibility task failed: {e}")))?;
        self.account(PluginKind::VisibilityPolicy, by, elapsed, &failures);
        Ok(decisions)
    }
}
