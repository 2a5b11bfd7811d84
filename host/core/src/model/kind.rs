//! The tables of POP and the fields each one indexes.

use std::fmt;

/// One kind of persisted object, i.e. one table of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    Agenda,
    AgendaTemplate,
    Customer,
    Insight,
    ResourcePool,
    AgendaProgress,
    OperationProgress,
    ReadyAgenda,
    InsightScheduleInfo,
    Plugin,
    PluginActivation,
    QueuedAgenda,
}

impl ObjectKind {
    pub const ALL: [ObjectKind; 12] = [
        ObjectKind::Agenda,
        ObjectKind::AgendaTemplate,
        ObjectKind::Customer,
        ObjectKind::Insight,
        ObjectKind::ResourcePool,
        ObjectKind::AgendaProgress,
        ObjectKind::OperationProgress,
        ObjectKind::ReadyAgenda,
        ObjectKind::InsightScheduleInfo,
        ObjectKind::Plugin,
        ObjectKind::PluginActivation,
        ObjectKind::QueuedAgenda,
    ];

    /// Table name, as POP's DynamoDB tables are named (without prefix/stage).
    pub fn table(self) -> &'static str {
        match self {
            ObjectKind::Agenda => "Agenda",
            ObjectKind::AgendaTemplate => "AgendaTemplate",
            ObjectKind::Customer => "Customer",
            ObjectKind::Insight => "Insight",
            ObjectKind::ResourcePool => "ResourcePool",
            ObjectKind::AgendaProgress => "ProgressAgenda",
            ObjectKind::OperationProgress => "ProgressOperation",
            ObjectKind::ReadyAgenda => "ReadyAgenda",
            ObjectKind::InsightScheduleInfo => "InsightScheduling",
            ObjectKind::Plugin => "Plugin",
            ObjectKind::PluginActivation => "PluginActivation",
            ObjectKind::QueuedAgenda => "QueuedAgenda",
        }
    }

    /// Top-level fields with a secondary index (the GSIs of spec §7.1, plus
    /// `customerId` on Customer and `resourcePoolId` lookups that POP scanned).
    /// An equality filter on one of them is served by the index.
    pub fn indexed_fields(self) -> &'static [&'static str] {
        match self {
            ObjectKind::Agenda => &["linkId", "customerId", "title"],
            ObjectKind::AgendaTemplate => &["title", "customerId"],
            ObjectKind::Customer => &["resourcePoolId", "title"],
            ObjectKind::Insight => &["resourcePoolId", "customerId", "title"],
            ObjectKind::ResourcePool => &["customerId", "title"],
            // `retryState` and `processingState`: the background jobs' scans.
            ObjectKind::AgendaProgress => &[
                "linkId",
                "customerId",
                "title",
                "agendaId",
                "retryState",
                "processingState",
            ],
            ObjectKind::OperationProgress => &["agendaProgressId", "customerId"],
            ObjectKind::ReadyAgenda => &["insightId", "agendaId", "customerId"],
            ObjectKind::InsightScheduleInfo => &[],
            ObjectKind::Plugin => &["customerId", "name"],
            ObjectKind::PluginActivation => &["customerId", "name"],
            ObjectKind::QueuedAgenda => &["insightId", "agendaId", "customerId"],
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.table())
    }
}
