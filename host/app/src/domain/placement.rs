//! Where a resource pool puts a customer's work: the Kubernetes namespace
//! its `namespaces` assign (issue 13), read by the embedded executor and
//! handed to remote ones with their lease.

use pop_core::ResourcePool;
use pop_ports::Store;

use crate::domain::typed::TypedStore;
use crate::error::AppResult;

/// The namespace `resource_pool_id` gives `customer_id`'s pods; `None` when
/// it names none (the launcher's own namespace then) or the pool is gone.
pub async fn namespace_for(store: &dyn Store, resource_pool_id: &str, customer_id: &str) -> AppResult<Option<String>> {
    if resource_pool_id.is_empty() {
        return Ok(None);
    }
    Ok(store
        .load::<ResourcePool>(resource_pool_id)
        .await?
        .and_then(|pool| pool.namespaces)
        .and_then(|namespaces| namespaces.for_customer(customer_id).map(str::to_owned)))
}
