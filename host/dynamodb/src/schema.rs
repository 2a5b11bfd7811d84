//! The tables: names, and their creation (for development and tests; in
//! production CloudFormation creates them).

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType,
};
use pop_core::ObjectKind;
use pop_ports::StoreError;

use crate::codec::{ID, SEQ, TABLE, index_attribute};
use crate::error::sdk_error;

/// The index of a kind in insertion order.
pub const IN_ORDER: &str = "in_order";

/// The index of an indexed field.
pub fn field_index(field: &str) -> String {
    format!("by_{field}")
}

/// Table names: `<prefix><Kind>` (spec §7.1's names, e.g. `ProgressAgenda`).
#[derive(Debug, Clone, Default)]
pub struct TableNames {
    pub prefix: String,
}

impl TableNames {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self { prefix: prefix.into() }
    }

    pub fn of(&self, kind: ObjectKind) -> String {
        format!("{}{}", self.prefix, kind.table())
    }
}

/// Creates the table of every kind that does not exist yet.
pub async fn create_missing(client: &Client, names: &TableNames) -> Result<(), StoreError> {
    for kind in ObjectKind::ALL {
        let table = names.of(kind);
        match client.describe_table().table_name(&table).send().await {
            Ok(_) => continue,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) => {}
            Err(e) => return Err(sdk_error(format!("describing table {table}"), e)),
        }
        create(client, kind, &table).await?;
    }
    Ok(())
}

async fn create(client: &Client, kind: ObjectKind, table: &str) -> Result<(), StoreError> {
    let attribute = |name: &str, kind: ScalarAttributeType| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(kind)
            .build()
            .map_err(|e| StoreError::backend(e.to_string()))
    };
    let key = |name: &str, key: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(key)
            .build()
            .map_err(|e| StoreError::backend(e.to_string()))
    };
    let index = |name: String, hash: &str| -> Result<GlobalSecondaryIndex, StoreError> {
        GlobalSecondaryIndex::builder()
            .index_name(name)
            .key_schema(key(hash, KeyType::Hash)?)
            .key_schema(key(SEQ, KeyType::Range)?)
            .projection(Projection::builder().projection_type(ProjectionType::All).build())
            .build()
            .map_err(|e| StoreError::backend(e.to_string()))
    };
    let mut request = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(ID, KeyType::Hash)?)
        .attribute_definitions(attribute(ID, ScalarAttributeType::S)?)
        .attribute_definitions(attribute(SEQ, ScalarAttributeType::N)?)
        .attribute_definitions(attribute(TABLE, ScalarAttributeType::S)?)
        .global_secondary_indexes(index(IN_ORDER.into(), TABLE)?);
    for field in kind.indexed_fields() {
        let hash = index_attribute(field);
        request = request
            .attribute_definitions(attribute(&hash, ScalarAttributeType::S)?)
            .global_secondary_indexes(index(field_index(field), &hash)?);
    }
    match request.send().await {
        Ok(_) => {}
        // Another process created it meanwhile.
        Err(e) if e.as_service_error().is_some_and(|e| e.is_resource_in_use_exception()) => {}
        Err(e) => return Err(sdk_error(format!("creating table {table}"), e)),
    }
    tracing::info!(table, "created the DynamoDB table");
    Ok(())
}
