//! A faster way into the guest for the scheduler's backlog.
//!
//! The bindgen types lower `list<pending-agenda>` field by field, and
//! wasmtime looks the guest memory up again for every field: for 10,000
//! agendas that is most of a decision's cost. Here the record keeps
//! wasmtime's derived type checking and single-value lowering, and only the
//! list store is replaced by one copy of the backlog's bytes: on a
//! little-endian host `PendingAgenda` (`repr(C)`) already has the canonical
//! ABI layout. The input record borrows the host's data instead of cloning
//! it, the backlog included.
//!
//! This overrides `Lower::linear_store_list_to_memory`, a hidden item of
//! wasmtime's lowering traits; it is stable within the pinned wasmtime
//! (`=48.0.8`) and checked by the scheduler equivalence tests.

use std::mem::MaybeUninit;

use pop_core::scheduling::{PendingAgenda, ScheduleInput};
use pop_core::visibility::PageColumns;

use crate::bindings::v0_1::types;
use wasmtime::component::__internal::{CanonicalAbiInfo, InstanceType, InterfaceType, LowerContext};
use wasmtime::component::{ComponentType, Lower};

/// The WIT record `pending-agenda`, as wasmtime derives it: the derive
/// type-checks field names and types against the component.
#[derive(ComponentType, Lower, Clone, Copy)]
#[component(record)]
#[repr(C)]
pub(crate) struct PendingRecord {
    #[component(name = "customer")]
    customer: u32,
    #[component(name = "priority")]
    priority: i32,
    #[component(name = "added-ms")]
    added_ms: u64,
}

/// Canonical ABI layout of `pending-agenda`: u32 at 0, s32 at 4, u64 at 8.
const PENDING_SIZE: usize = 16;
const _: () = assert!(PendingRecord::SIZE32 == PENDING_SIZE);

/// `pending-agenda` with a list store that is one copy.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub(crate) struct Pending(PendingRecord);

// `Pending`, `PendingRecord` and `PendingAgenda` are the same bytes: a
// backlog can be viewed as `[Pending]` without converting it.
const _: () = {
    use std::mem::{align_of, offset_of, size_of};
    assert!(size_of::<Pending>() == size_of::<PendingAgenda>());
    assert!(align_of::<Pending>() == align_of::<PendingAgenda>());
    assert!(size_of::<PendingAgenda>() == PENDING_SIZE);
    assert!(offset_of!(PendingRecord, customer) == offset_of!(PendingAgenda, customer));
    assert!(offset_of!(PendingRecord, priority) == offset_of!(PendingAgenda, priority));
    assert!(offset_of!(PendingRecord, added_ms) == offset_of!(PendingAgenda, added_ms));
    // Canonical ABI offsets (see PENDING_SIZE), with no padding anywhere.
    assert!(offset_of!(PendingAgenda, customer) == 0);
    assert!(offset_of!(PendingAgenda, priority) == 4);
    assert!(offset_of!(PendingAgenda, added_ms) == 8);
};

/// The host's backlog as `pending-agenda` records, without a copy.
pub(crate) fn as_pending(backlog: &[PendingAgenda]) -> &[Pending] {
    // SAFETY: `Pending` is `repr(transparent)` over `PendingRecord`, a
    // `repr(C)` struct with the same field types, offsets, size and
    // alignment as `PendingAgenda` (asserted above), so every
    // `PendingAgenda` is a valid `Pending`.
    unsafe { std::slice::from_raw_parts(backlog.as_ptr().cast::<Pending>(), backlog.len()) }
}

// SAFETY: every item delegates to the derived implementation of the same
// record, except the list store, which writes the same bytes.
unsafe impl ComponentType for Pending {
    type Lower = <PendingRecord as ComponentType>::Lower;
    const ABI: CanonicalAbiInfo = PendingRecord::ABI;
    const MAY_REQUIRE_REALLOC: bool = PendingRecord::MAY_REQUIRE_REALLOC;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        PendingRecord::typecheck(ty, types)
    }
}

// SAFETY: see `ComponentType` above.
unsafe impl Lower for Pending {
    fn linear_lower_to_flat<T>(
        &self,
        cx: &mut LowerContext<'_, T>,
        ty: InterfaceType,
        dst: &mut MaybeUninit<Self::Lower>,
    ) -> wasmtime::Result<()> {
        self.0.linear_lower_to_flat(cx, ty, dst)
    }

    fn linear_lower_to_memory<T>(
        &self,
        cx: &mut LowerContext<'_, T>,
        ty: InterfaceType,
        offset: usize,
    ) -> wasmtime::Result<()> {
        self.0.linear_lower_to_memory(cx, ty, offset)
    }

    fn linear_store_list_to_memory<T>(
        cx: &mut LowerContext<'_, T>,
        _ty: InterfaceType,
        offset: usize,
        items: &[Self],
    ) -> wasmtime::Result<()> {
        // wasmtime has allocated and bounds-checked `items.len() * SIZE32`
        // bytes at `offset`; slicing re-checks and cannot write elsewhere.
        let dst = &mut cx.as_slice_mut()[offset..][..items.len() * PENDING_SIZE];
        if cfg!(target_endian = "little") {
            // SAFETY: `Pending` is 16 bytes of plain integers without
            // padding (asserted above): all its bytes are initialized.
            let src = unsafe { std::slice::from_raw_parts(items.as_ptr().cast::<u8>(), std::mem::size_of_val(items)) };
            dst.copy_from_slice(src);
        } else {
            for (slot, Pending(item)) in dst.chunks_exact_mut(PENDING_SIZE).zip(items) {
                slot[0..4].copy_from_slice(&item.customer.to_le_bytes());
                slot[4..8].copy_from_slice(&item.priority.to_le_bytes());
                slot[8..16].copy_from_slice(&item.added_ms.to_le_bytes());
            }
        }
        Ok(())
    }
}

/// The WIT record `schedule-input` of `pop:plugin@0.2.0`, borrowing the
/// host's data: customer ids as one string and their ends.
#[derive(ComponentType, Lower)]
#[component(record)]
pub(crate) struct ScheduleInputV0_2<'a> {
    #[component(name = "now-ms")]
    now_ms: u64,
    #[component(name = "free-slots")]
    free_slots: u32,
    #[component(name = "customer-ids")]
    customer_ids: &'a str,
    #[component(name = "customer-id-ends")]
    customer_id_ends: &'a [u32],
    #[component(name = "pending")]
    pending: &'a [Pending],
    #[component(name = "running")]
    running: &'a [u32],
    #[component(name = "config")]
    config: &'a str,
    #[component(name = "state")]
    state: &'a [u8],
}

impl<'a> ScheduleInputV0_2<'a> {
    pub(crate) fn new(input: &ScheduleInput<'a>) -> Self {
        Self {
            now_ms: input.now_ms,
            free_slots: input.free_slots,
            customer_ids: input.customers.text(),
            customer_id_ends: input.customers.ends(),
            pending: as_pending(input.pending),
            running: input.running,
            config: input.config,
            state: input.state,
        }
    }
}

/// The WIT record `schedule-input` of `pop:plugin@0.1.0`: customer ids as
/// `list<string>`, from a list of borrowed ids the caller keeps alive.
#[derive(ComponentType, Lower)]
#[component(record)]
pub(crate) struct ScheduleInputV0_1<'a> {
    #[component(name = "now-ms")]
    now_ms: u64,
    #[component(name = "free-slots")]
    free_slots: u32,
    #[component(name = "customers")]
    customers: &'a [&'a str],
    #[component(name = "pending")]
    pending: &'a [Pending],
    #[component(name = "running")]
    running: &'a [u32],
    #[component(name = "config")]
    config: &'a str,
    #[component(name = "state")]
    state: &'a [u8],
}

impl<'a> ScheduleInputV0_1<'a> {
    pub(crate) fn new(input: &ScheduleInput<'a>, customers: &'a [&'a str]) -> Self {
        Self {
            now_ms: input.now_ms,
            free_slots: input.free_slots,
            customers,
            pending: as_pending(input.pending),
            running: input.running,
            config: input.config,
            state: input.state,
        }
    }
}

/// The WIT record `object-page` of `pop:plugin@0.2.0`, borrowing the
/// columns of a [`pop_core::visibility::ObjectPage`]: every column is a
/// `list<u32>`, which wasmtime copies in one block.
#[derive(ComponentType, Lower)]
#[component(record)]
pub(crate) struct ObjectPageRef<'a> {
    #[component(name = "kind")]
    kind: types::ObjectKind,
    #[component(name = "strings")]
    strings: &'a str,
    #[component(name = "string-ends")]
    string_ends: &'a [u32],
    #[component(name = "ids")]
    ids: &'a [u32],
    #[component(name = "customer-ids")]
    customer_ids: &'a [u32],
    #[component(name = "global")]
    global: &'a [u32],
    #[component(name = "allowed-ends")]
    allowed_ends: &'a [u32],
    #[component(name = "allowed")]
    allowed: &'a [u32],
}

impl<'a> ObjectPageRef<'a> {
    /// The record for a page of objects of `kind`.
    pub(crate) fn new(kind: types::ObjectKind, page: PageColumns<'a>) -> Self {
        Self {
            kind,
            strings: page.strings,
            string_ends: page.string_ends,
            ids: page.ids,
            customer_ids: page.customer_ids,
            global: page.global,
            allowed_ends: page.allowed_ends,
            allowed: page.allowed,
        }
    }
}
