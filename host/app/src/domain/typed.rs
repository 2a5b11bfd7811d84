//! Typed access to the store: `pop-core`'s model types in and out, the
//! table taken from the type (`DataObject::KIND`), so that no call site
//! names a kind and a type that could disagree. Documents stay POP's JSON
//! in the store and on the wire; this is the one conversion.

use async_trait::async_trait;
use pop_core::DataObject;
use pop_ports::{Filter, Query, Store, Write};

use super::body::{from_document, to_document};
use crate::error::AppResult;

/// Reads of typed objects, on any store.
#[async_trait]
pub trait TypedStore {
    /// The object with this id, if any.
    async fn load<T: DataObject>(&self, id: &str) -> AppResult<Option<T>>;

    /// The objects matching `query` and `visible`, in insertion order.
    async fn load_where<T: DataObject>(&self, query: &Query, visible: Option<Filter>) -> AppResult<Vec<T>>;
}

#[async_trait]
impl<S: Store + ?Sized> TypedStore for S {
    async fn load<T: DataObject>(&self, id: &str) -> AppResult<Option<T>> {
        match self.get(T::KIND, id).await? {
            Some(doc) => Ok(Some(from_document(doc)?)),
            None => Ok(None),
        }
    }

    async fn load_where<T: DataObject>(&self, query: &Query, visible: Option<Filter>) -> AppResult<Vec<T>> {
        self.query(T::KIND, query, visible)
            .await?
            .into_iter()
            .map(from_document)
            .collect()
    }
}

/// A Put of `object` into its table (replacing one with the same id).
pub fn put<T: DataObject>(object: &T) -> AppResult<Write> {
    Ok(Write::put(T::KIND, to_document(object)?))
}

/// A Create of `object` in its table (failing if its id exists).
pub fn create<T: DataObject>(object: &T) -> AppResult<Write> {
    Ok(Write::create(T::KIND, to_document(object)?))
}

#[cfg(test)]
mod tests {
    use pop_core::{Insight, ObjectKind};
    use pop_memory::MemoryStore;

    use super::*;

    #[tokio::test]
    async fn objects_go_in_and_come_out_of_their_own_table() {
        let store = MemoryStore::new();
        let mut insight = Insight {
            execution_limit: Some(3),
            ..Default::default()
        };
        insight.envelope.id = Some("work".into());
        insight.envelope.customer_id = Some("acme".into());
        store.write(vec![create(&insight).unwrap()]).await.unwrap();
        assert!(store.get(ObjectKind::Insight, "work").await.unwrap().is_some());
        let loaded: Insight = store.load("work").await.unwrap().expect("stored");
        assert_eq!(loaded.execution_limit, Some(3));
        let all: Vec<Insight> = store.load_where(&Query::by("customerId", "acme"), None).await.unwrap();
        assert_eq!(all.len(), 1);
        assert!(store.load::<Insight>("absent").await.unwrap().is_none());
        insight.execution_limit = Some(4);
        store.write(vec![put(&insight).unwrap()]).await.unwrap();
        assert_eq!(
            store.load::<Insight>("work").await.unwrap().unwrap().execution_limit,
            Some(4)
        );
    }
}
