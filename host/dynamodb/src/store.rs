//! `DynamoStore`: the `Store` port on DynamoDB (see the crate's docs).

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};
use pop_core::ObjectKind;
use pop_ports::rules::{check_patch_id, document_id, overlay};
use pop_ports::{
    Condition, Document, DocumentLimits, Filter, Query, Result, ScanCursor, ScanPage, Store, StoreError, Write,
    check_write_count, field_text,
};

use crate::codec::{self, ID, Item, SEQ, Stored, TABLE, VER, index_attribute};
use crate::error::{ConnectError, is_transient, sdk_error};
use crate::schema::{self, IN_ORDER, TableNames, field_index};

/// Times a write is worked out again after losing a race for its items.
const WRITE_ATTEMPTS: u32 = 25;
/// Tries of one transaction that fails transiently (throttled, 5xx).
const TRANSACTION_TRIES: u32 = 8;
/// Items read per page of a query without a limit.
const QUERY_PAGE: i32 = 500;

pub struct DynamoStore {
    client: Client,
    names: TableNames,
    /// The last insertion-order number handed out by this process.
    last_seq: Mutex<i64>,
}

/// Why one attempt at a write did not apply.
enum Attempt {
    /// An item changed between the read and the write: work it out again.
    Raced,
    Failed(StoreError),
}

impl From<StoreError> for Attempt {
    fn from(error: StoreError) -> Self {
        Attempt::Failed(error)
    }
}

/// One item a write touches: as read, and as the writes leave it.
struct Touched {
    kind: ObjectKind,
    id: String,
    base: Option<Stored>,
    current: Option<Document>,
}

impl DynamoStore {
    pub fn new(client: Client, names: TableNames) -> Self {
        Self {
            client,
            names,
            last_seq: Mutex::new(0),
        }
    }

    /// On the AWS configuration found the standard way (`AWS_REGION`,
    /// `AWS_ENDPOINT_URL`, credentials, profiles, instance roles).
    pub async fn from_env(names: TableNames) -> Self {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Self::new(Client::new(&config), names)
    }

    /// Creates the tables that do not exist yet (development and tests).
    pub async fn create_tables(&self) -> std::result::Result<(), ConnectError> {
        schema::create_missing(&self.client, &self.names)
            .await
            .map_err(ConnectError::Tables)
    }

    /// The next number in insertion order: time-based, so numbers of
    /// several processes interleave as their writes did, and increasing
    /// within this one.
    fn next_seq(&self) -> i64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX / 1000))
            .saturating_mul(1000);
        let mut last = self.last_seq.lock().unwrap_or_else(|e| e.into_inner());
        *last = (*last + 1).max(now);
        *last
    }

    async fn read(&self, kind: ObjectKind, id: &str) -> Result<Option<Stored>> {
        let reply = self
            .client
            .get_item()
            .table_name(self.names.of(kind))
            .key(ID, AttributeValue::S(id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error(format!("reading {kind} {id}"), e))?;
        reply.item.map(|item| codec::decode(kind, &item)).transpose()
    }

    /// One page of `kind` in insertion order, through the index of the
    /// first indexed equality filter (else the whole kind's), after `start`.
    async fn page(
        &self,
        kind: ObjectKind,
        query: &Query,
        start: Option<Item>,
        limit: i32,
    ) -> Result<(Vec<Item>, Option<Item>)> {
        let indexed = query
            .filters
            .iter()
            .find(|(field, value)| kind.indexed_fields().contains(&field.as_str()) && !value.is_empty());
        let (index, attribute, value) = match indexed {
            Some((field, value)) => (field_index(field), index_attribute(field), value.clone()),
            None => (IN_ORDER.to_owned(), TABLE.to_owned(), kind.table().to_owned()),
        };
        let reply = self
            .client
            .query()
            .table_name(self.names.of(kind))
            .index_name(index)
            .key_condition_expression("#k = :v")
            .expression_attribute_names("#k", attribute)
            .expression_attribute_values(":v", AttributeValue::S(value))
            .scan_index_forward(true)
            .limit(limit.max(1))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| sdk_error(format!("querying {kind}"), e))?;
        Ok((reply.items.unwrap_or_default(), reply.last_evaluated_key))
    }

    /// Documents of `kind` matching `query` and `visible`, in insertion
    /// order, up to `limit`.
    async fn matching(
        &self,
        kind: ObjectKind,
        query: &Query,
        visible: Option<&Filter>,
        limit: usize,
    ) -> Result<Vec<Document>> {
        let mut found = Vec::new();
        let mut start = None;
        while found.len() < limit {
            let (items, next) = self.page(kind, query, start, QUERY_PAGE).await?;
            for item in &items {
                let doc = codec::decode(kind, item)?.doc;
                if matches(&doc, query) && visible.is_none_or(|v| v.admits(kind, &doc)) {
                    found.push(doc);
                    if found.len() == limit {
                        break;
                    }
                }
            }
            match next {
                Some(key) => start = Some(key),
                None => break,
            }
        }
        Ok(found)
    }

    fn check_limits(&self, kind: ObjectKind, doc: &Document) -> Result<()> {
        let limits = self.document_limits(kind);
        limits.check_depth(kind, doc)?;
        let bytes = serde_json::to_vec(doc).map_err(|e| StoreError::InvalidDocument(e.to_string()))?;
        limits.check_size(kind, doc, bytes.len())
    }

    /// Reads what `writes` touch, applies them, and writes the outcome
    /// conditional on every item being as read.
    async fn attempt(&self, writes: &[Write]) -> std::result::Result<Vec<Option<Document>>, Attempt> {
        let mut touched: Vec<Touched> = Vec::new();
        for write in writes {
            let (kind, id) = key_of(write)?;
            if !touched.iter().any(|t| t.kind == kind && t.id == id) {
                let base = self.read(kind, &id).await?;
                let current = base.as_ref().map(|b| b.doc.clone());
                touched.push(Touched {
                    kind,
                    id,
                    base,
                    current,
                });
            }
        }
        let mut results = Vec::with_capacity(writes.len());
        for write in writes {
            let (kind, id) = key_of(write)?;
            let item = touched
                .iter_mut()
                .find(|t| t.kind == kind && t.id == id)
                .expect("every key was read");
            results.push(self.apply(item, write.clone())?);
        }
        let operations: Vec<TransactWriteItem> = touched
            .iter()
            .filter_map(|t| self.operation(t).transpose())
            .collect::<Result<_>>()?;
        match self.commit(operations).await {
            Ok(()) => Ok(results),
            // A condition failed. Either another writer got there first, or
            // this very write was applied by a try whose answer was lost (a
            // 5xx, which the SDK and `commit` send again; a stand-in such as
            // moto ignores the transaction's idempotency token): then every
            // item is exactly as this write left it.
            Err(Attempt::Raced) if self.applied(&touched).await? => Ok(results),
            Err(other) => Err(other),
        }
    }

    /// Whether the items hold what this write put there (the version it
    /// wrote and its document, or their absence).
    async fn applied(&self, touched: &[Touched]) -> Result<bool> {
        for item in touched {
            let now = self.read(item.kind, &item.id).await?;
            let as_written = match (&item.base, &item.current, &now) {
                (None, None, _) => true,
                (_, None, now) => now.is_none(),
                (base, Some(doc), Some(now)) => now.ver == base.as_ref().map_or(1, |b| b.ver + 1) && &now.doc == doc,
                (_, Some(_), None) => false,
            };
            if !as_written {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The port's rules for one write, on the item as the batch left it.
    fn apply(&self, item: &mut Touched, write: Write) -> Result<Option<Document>> {
        let (kind, id) = (item.kind, item.id.clone());
        match write {
            Write::Put { doc, condition, .. } => {
                self.check_limits(kind, &doc)?;
                match (condition, item.current.is_some()) {
                    (Condition::MustNotExist, true) => return Err(StoreError::AlreadyExists { kind, id }),
                    (Condition::MustExist, false) => return Err(StoreError::NotFound { kind, id }),
                    _ => {}
                }
                item.current = Some(doc.clone());
                Ok(Some(doc))
            }
            Write::Merge { patch, expect, .. } => {
                check_patch_id(kind, &id, &patch)?;
                let mut doc = item
                    .current
                    .clone()
                    .ok_or_else(|| StoreError::NotFound { kind, id: id.clone() })?;
                if !expect.held_by(&doc) {
                    return Err(StoreError::ConditionFailed { kind, id });
                }
                overlay(&mut doc, patch);
                self.check_limits(kind, &doc)?;
                item.current = Some(doc.clone());
                Ok(Some(doc))
            }
            Write::Delete { expect, .. } => {
                if !expect.is_empty() {
                    let doc = item
                        .current
                        .as_ref()
                        .ok_or_else(|| StoreError::NotFound { kind, id: id.clone() })?;
                    if !expect.held_by(doc) {
                        return Err(StoreError::ConditionFailed { kind, id });
                    }
                }
                Ok(item.current.take())
            }
        }
    }

    /// The item's write, conditional on its version as read (or on its
    /// absence); `None` when the batch leaves it as it was absent.
    fn operation(&self, item: &Touched) -> Result<Option<TransactWriteItem>> {
        let table = self.names.of(item.kind);
        let key = AttributeValue::S(item.id.clone());
        let build = |e: aws_sdk_dynamodb::error::BuildError| StoreError::backend(e.to_string());
        let operation = match (&item.base, &item.current) {
            (None, None) => return Ok(None),
            (Some(base), None) => TransactWriteItem::builder()
                .delete(
                    Delete::builder()
                        .table_name(table)
                        .key(ID, key)
                        .condition_expression("#ver = :ver")
                        .expression_attribute_names("#ver", VER)
                        .expression_attribute_values(":ver", AttributeValue::N(base.ver.to_string()))
                        .build()
                        .map_err(build)?,
                )
                .build(),
            (base, Some(doc)) => {
                let (seq, ver) = match base {
                    Some(base) => (base.seq, base.ver + 1),
                    None => (self.next_seq(), 1),
                };
                let put = Put::builder()
                    .table_name(table)
                    .set_item(Some(codec::encode(item.kind, &item.id, doc, seq, ver)?));
                let put = match base {
                    Some(base) => put
                        .condition_expression("#ver = :ver")
                        .expression_attribute_names("#ver", VER)
                        .expression_attribute_values(":ver", AttributeValue::N(base.ver.to_string())),
                    None => put
                        .condition_expression("attribute_not_exists(#id)")
                        .expression_attribute_names("#id", ID),
                };
                TransactWriteItem::builder().put(put.build().map_err(build)?).build()
            }
        };
        Ok(Some(operation))
    }

    /// Writes `operations` at once: one conditional item write, or a
    /// transaction of them.
    async fn commit(&self, mut operations: Vec<TransactWriteItem>) -> std::result::Result<(), Attempt> {
        if operations.len() == 1 {
            let only = operations.remove(0);
            return self.commit_one(only).await;
        }
        if operations.is_empty() {
            return Ok(());
        }
        // One token for every try of this transaction: DynamoDB applies a
        // transaction sent again with the same token at most once (for ten
        // minutes), so a try whose answer was lost is not applied twice.
        let token = format!("{:x}-{}", self.next_seq(), operations.len());
        let mut tries = 0;
        loop {
            tries += 1;
            let sent = self
                .client
                .transact_write_items()
                .set_transact_items(Some(operations.clone()))
                .client_request_token(&token)
                .send()
                .await;
            let error = match sent {
                Ok(_) => return Ok(()),
                Err(error) => error,
            };
            if lost_a_race(&error) {
                return Err(Attempt::Raced);
            }
            if is_transient(&error) && tries < TRANSACTION_TRIES {
                tracing::warn!(error = %error, tries, "a transaction failed transiently; sending it again");
                tokio::time::sleep(Duration::from_millis((25u64 << tries).min(500))).await;
                continue;
            }
            return Err(Attempt::Failed(sdk_error("writing a transaction".into(), error)));
        }
    }

    async fn commit_one(&self, operation: TransactWriteItem) -> std::result::Result<(), Attempt> {
        if let Some(put) = operation.put {
            let reply = self
                .client
                .put_item()
                .table_name(put.table_name)
                .set_item(Some(put.item))
                .set_condition_expression(put.condition_expression)
                .set_expression_attribute_names(put.expression_attribute_names)
                .set_expression_attribute_values(put.expression_attribute_values)
                .send()
                .await;
            return single_outcome(reply, "writing an item");
        }
        if let Some(delete) = operation.delete {
            let reply = self
                .client
                .delete_item()
                .table_name(delete.table_name)
                .set_key(Some(delete.key))
                .set_condition_expression(delete.condition_expression)
                .set_expression_attribute_names(delete.expression_attribute_names)
                .set_expression_attribute_values(delete.expression_attribute_values)
                .send()
                .await;
            return single_outcome(reply, "deleting an item");
        }
        Ok(())
    }
}

/// A single conditional item write's outcome: a failed condition means
/// another writer got there between our read and this write.
fn single_outcome<T, E>(
    reply: std::result::Result<T, aws_sdk_dynamodb::error::SdkError<E, HttpResponse>>,
    what: &str,
) -> std::result::Result<(), Attempt>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match reply {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error().and_then(ProvideErrorMetadata::code) == Some("ConditionalCheckFailedException") =>
        {
            Err(Attempt::Raced)
        }
        Err(e) => Err(Attempt::Failed(sdk_error(what.into(), e))),
    }
}

/// Whether a transaction was cancelled because an item was not as read
/// (another writer got there first).
fn lost_a_race<R>(error: &aws_sdk_dynamodb::error::SdkError<TransactWriteItemsError, R>) -> bool {
    match error.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(canceled)) => canceled
            .cancellation_reasons()
            .iter()
            .any(|reason| matches!(reason.code(), Some("ConditionalCheckFailed" | "TransactionConflict"))),
        _ => false,
    }
}

/// The kind and id a write is about.
fn key_of(write: &Write) -> Result<(ObjectKind, String)> {
    Ok(match write {
        Write::Put { kind, doc, .. } => (*kind, document_id(doc)?.to_owned()),
        Write::Merge { kind, id, .. } | Write::Delete { kind, id, .. } => (*kind, id.clone()),
    })
}

/// Whether `doc` passes every equality filter of `query` (as text).
fn matches(doc: &Document, query: &Query) -> bool {
    query
        .filters
        .iter()
        .all(|(field, value)| field_text(doc, field).as_deref() == Some(value.as_str()))
}

/// A scan cursor: the page's last evaluated key, as JSON.
fn cursor_of(key: &Item) -> ScanCursor {
    let fields: serde_json::Map<String, serde_json::Value> = key
        .iter()
        .map(|(name, value)| {
            let value = match value {
                AttributeValue::S(s) => serde_json::json!({"S": s}),
                AttributeValue::N(n) => serde_json::json!({"N": n}),
                _ => serde_json::Value::Null,
            };
            (name.clone(), value)
        })
        .collect();
    ScanCursor(serde_json::Value::Object(fields).to_string())
}

fn key_of_cursor(cursor: &ScanCursor) -> Result<Item> {
    let not_ours = || StoreError::InvalidDocument(format!("not a cursor of this store: {:?}", cursor.0));
    let fields: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&cursor.0).map_err(|_| not_ours())?;
    let mut key = Item::new();
    for (name, value) in fields {
        let attribute = match (value.get("S"), value.get("N")) {
            (Some(serde_json::Value::String(s)), _) => AttributeValue::S(s.clone()),
            (_, Some(serde_json::Value::String(n))) => AttributeValue::N(n.clone()),
            _ => return Err(not_ours()),
        };
        key.insert(name, attribute);
    }
    if !key.contains_key(ID) || !key.contains_key(SEQ) {
        return Err(not_ours());
    }
    Ok(key)
}

#[async_trait]
impl Store for DynamoStore {
    async fn get(&self, kind: ObjectKind, id: &str) -> Result<Option<Document>> {
        Ok(self.read(kind, id).await?.map(|stored| stored.doc))
    }

    async fn query(&self, kind: ObjectKind, query: &Query, visible: Option<Filter>) -> Result<Vec<Document>> {
        let limit = query.limit.unwrap_or(usize::MAX);
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.matching(kind, query, visible.as_ref(), limit).await
    }

    async fn count(&self, kind: ObjectKind, query: &Query, visible: Option<Filter>) -> Result<u64> {
        Ok(self.matching(kind, query, visible.as_ref(), usize::MAX).await?.len() as u64)
    }

    async fn scan(
        &self,
        kind: ObjectKind,
        query: &Query,
        filter: Option<Filter>,
        from: Option<&ScanCursor>,
        examine: usize,
    ) -> Result<ScanPage> {
        let start = from.map(key_of_cursor).transpose()?;
        let limit = i32::try_from(examine.max(1)).unwrap_or(i32::MAX);
        let (items, next) = self.page(kind, query, start, limit).await?;
        let mut page = ScanPage::default();
        for item in &items {
            let doc = codec::decode(kind, item)?.doc;
            if matches(&doc, query) && filter.as_ref().is_none_or(|keep| keep.admits(kind, &doc)) {
                page.docs.push(doc);
            }
        }
        page.next = next.as_ref().map(cursor_of);
        Ok(page)
    }

    async fn write(&self, writes: Vec<Write>) -> Result<Vec<Option<Document>>> {
        check_write_count(writes.len(), self.max_writes())?;
        for attempt in 1..=WRITE_ATTEMPTS {
            match self.attempt(&writes).await {
                Ok(results) => return Ok(results),
                Err(Attempt::Failed(error)) => return Err(error),
                Err(Attempt::Raced) => {
                    // Another writer got there between our read and write:
                    // read again, after a pause that spreads the contenders.
                    let spread = u64::from(attempt) * (1 + self.next_seq().rem_euclid(7) as u64);
                    tokio::time::sleep(Duration::from_millis(spread)).await;
                }
            }
        }
        Err(StoreError::Unavailable {
            message: format!("the items of a write kept changing under it ({WRITE_ATTEMPTS} attempts)"),
            source: None,
        })
    }

    fn document_limits(&self, _kind: ObjectKind) -> DocumentLimits {
        DocumentLimits::ITEM
    }
}
