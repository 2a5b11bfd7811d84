//! A page of objects as a visibility policy receives it (the `object-page`
//! record of `pop:plugin@0.2.0`): the objects of one kind as columns of
//! indices over one string table.
//!
//! The host writes pages with [`ObjectPage`] and the guest SDK reads them
//! back with [`PageColumns::objects`], so the layout is defined, and tested,
//! in one place. A page crosses into a guest as a handful of block copies
//! whatever its size, where a list of records of strings costs two or three
//! guest allocations per object.

use serde_json::{Map, Value};

use super::Ownership;

/// One object of a page, borrowed from the page's strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageObject<'a> {
    /// Its `id`.
    pub id: &'a str,
    /// Its owner (`customerId`), empty when it has none.
    pub customer_id: &'a str,
    /// `isGlobal`.
    pub is_global: bool,
    /// `allowedCustomerIds`, as stored.
    pub allowed_customer_ids: Vec<&'a str>,
}

/// A page being written: objects are appended one at a time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectPage {
    strings: String,
    string_ends: Vec<u32>,
    ids: Vec<u32>,
    customer_ids: Vec<u32>,
    global: Vec<u32>,
    allowed_ends: Vec<u32>,
    allowed: Vec<u32>,
}

impl ObjectPage {
    /// An empty page.
    pub fn new() -> Self {
        Self::default()
    }

    /// The page of stored documents: each one's `id` and its sharing fields
    /// (`customerId`, `isGlobal`, `allowedCustomerIds`; non-string entries
    /// of the list are left out, as POP's rule ignores them).
    pub fn from_documents<'d>(docs: impl IntoIterator<Item = &'d Map<String, Value>>) -> Self {
        let mut page = Self::new();
        for doc in docs {
            let ownership = Ownership::of(doc);
            let allowed = ownership.allowed_customer_ids.unwrap_or_default();
            page.push(
                doc.get("id").and_then(Value::as_str).unwrap_or_default(),
                ownership.customer_id.unwrap_or_default(),
                ownership.is_global,
                allowed.iter().filter_map(Value::as_str),
            );
        }
        page
    }

    /// Append one object.
    pub fn push<'s>(
        &mut self,
        id: &str,
        customer_id: &str,
        is_global: bool,
        allowed_customer_ids: impl IntoIterator<Item = &'s str>,
    ) {
        let index = self.ids.len() as u32;
        let id = self.push_string(id);
        self.ids.push(id);
        // A policy is asked about one owner's objects: the owner is written
        // once and every object of the page points at it.
        let customer = match self.customer_ids.last() {
            Some(&last) if self.string(last) == customer_id => last,
            _ => self.push_string(customer_id),
        };
        self.customer_ids.push(customer);
        if is_global {
            self.global.push(index);
        }
        for allowed in allowed_customer_ids {
            let at = self.push_string(allowed);
            self.allowed.push(at);
        }
        self.allowed_ends.push(self.allowed.len() as u32);
    }

    /// How many objects the page holds.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the page holds no object.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The objects of the page, in order (for the 0.1.0 contract, which
    /// takes records): the guest's reader, on a page this builder wrote.
    pub fn objects(&self) -> Vec<PageObject<'_>> {
        self.columns()
            .objects()
            .expect("ObjectPage only writes pages that hold together")
    }

    /// The page's columns, as they cross into a guest.
    pub fn columns(&self) -> PageColumns<'_> {
        PageColumns {
            strings: &self.strings,
            string_ends: &self.string_ends,
            ids: &self.ids,
            customer_ids: &self.customer_ids,
            global: &self.global,
            allowed_ends: &self.allowed_ends,
            allowed: &self.allowed,
        }
    }

    fn push_string(&mut self, text: &str) -> u32 {
        self.strings.push_str(text);
        // Pages are bounded (a page of a listing, a few MiB at most), far
        // below the 4 GiB a u32 offset reaches.
        self.string_ends.push(self.strings.len() as u32);
        (self.string_ends.len() - 1) as u32
    }

    fn string(&self, index: u32) -> &str {
        let index = index as usize;
        let start = if index == 0 {
            0
        } else {
            self.string_ends[index - 1] as usize
        };
        &self.strings[start..self.string_ends[index] as usize]
    }
}

/// The columns of a page, borrowed: what the host lowers into a guest and
/// what a guest reads back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageColumns<'a> {
    /// Every string of the page, back to back.
    pub strings: &'a str,
    /// Where each string of `strings` ends (byte offset, exclusive).
    pub string_ends: &'a [u32],
    /// Per object: its `id`, as a string index.
    pub ids: &'a [u32],
    /// Per object: its `customerId`, as a string index.
    pub customer_ids: &'a [u32],
    /// The objects that are global, by object index.
    pub global: &'a [u32],
    /// Per object: where its entries of `allowed` end (exclusive).
    pub allowed_ends: &'a [u32],
    /// The `allowedCustomerIds` of every object, back to back, as string
    /// indices.
    pub allowed: &'a [u32],
}

/// Why a page's columns do not hold together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPage {
    #[error("string #{index} ends at byte {end}, which does not cut the page's {len} bytes of strings into strings")]
    StringEnd { index: usize, end: u32, len: usize },
    #[error("columns of different lengths: {ids} ids, {customer_ids} customer ids, {allowed_ends} allowed ends")]
    ColumnLengths {
        ids: usize,
        customer_ids: usize,
        allowed_ends: usize,
    },
    #[error("{column} of object #{object} is string #{string}, but the page has {strings} strings")]
    StringIndex {
        column: &'static str,
        object: usize,
        string: u32,
        strings: usize,
    },
    #[error("allowed ids of object #{object} end at {end}: out of order or past the {len} allowed ids")]
    AllowedEnd { object: usize, end: u32, len: usize },
    #[error("object #{index} is marked global, but the page has {count} objects")]
    GlobalIndex { index: u32, count: usize },
}

impl<'a> PageColumns<'a> {
    /// The objects of the page, in order. Refuses a page whose columns do
    /// not hold together (a page from a host that is not POP's, or a bug)
    /// rather than guess.
    pub fn objects(&self) -> Result<Vec<PageObject<'a>>, InvalidPage> {
        let strings = self.string_table()?;
        let count = self.ids.len();
        if self.customer_ids.len() != count || self.allowed_ends.len() != count {
            return Err(InvalidPage::ColumnLengths {
                ids: count,
                customer_ids: self.customer_ids.len(),
                allowed_ends: self.allowed_ends.len(),
            });
        }
        let string = |column: &'static str, object: usize, string: u32| {
            strings.get(string as usize).copied().ok_or(InvalidPage::StringIndex {
                column,
                object,
                string,
                strings: strings.len(),
            })
        };
        let mut objects = Vec::with_capacity(count);
        let mut allowed_start = 0usize;
        for object in 0..count {
            let end = self.allowed_ends[object];
            let allowed = self
                .allowed
                .get(allowed_start..end as usize)
                .ok_or(InvalidPage::AllowedEnd {
                    object,
                    end,
                    len: self.allowed.len(),
                })?;
            allowed_start = end as usize;
            objects.push(PageObject {
                id: string("id", object, self.ids[object])?,
                customer_id: string("customer id", object, self.customer_ids[object])?,
                is_global: false,
                allowed_customer_ids: allowed
                    .iter()
                    .map(|&at| string("allowed customer id", object, at))
                    .collect::<Result<_, _>>()?,
            });
        }
        for &index in self.global {
            let object = objects
                .get_mut(index as usize)
                .ok_or(InvalidPage::GlobalIndex { index, count })?;
            object.is_global = true;
        }
        Ok(objects)
    }

    /// The strings of the page, cut at their ends.
    fn string_table(&self) -> Result<Vec<&'a str>, InvalidPage> {
        let mut table = Vec::with_capacity(self.string_ends.len());
        let mut start = 0usize;
        for (index, &end) in self.string_ends.iter().enumerate() {
            // `get` also refuses an end inside a UTF-8 sequence.
            let text = self.strings.get(start..end as usize).ok_or(InvalidPage::StringEnd {
                index,
                end,
                len: self.strings.len(),
            })?;
            table.push(text);
            start = end as usize;
        }
        Ok(table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ObjectPage {
        let mut page = ObjectPage::new();
        page.push("a1", "acme", false, []);
        page.push("a2", "acme", true, ["beta", "Gamma"]);
        page.push("ü3", "acme", false, ["delta"]);
        page.push("b1", "other", false, []);
        page
    }

    fn object<'a>(id: &'a str, customer_id: &'a str, is_global: bool, allowed: &[&'a str]) -> PageObject<'a> {
        PageObject {
            id,
            customer_id,
            is_global,
            allowed_customer_ids: allowed.to_vec(),
        }
    }

    #[test]
    fn objects_come_back_as_pushed() {
        let page = sample();
        assert_eq!(page.len(), 4);
        let expected = vec![
            object("a1", "acme", false, &[]),
            object("a2", "acme", true, &["beta", "Gamma"]),
            object("ü3", "acme", false, &["delta"]),
            object("b1", "other", false, &[]),
        ];
        assert_eq!(page.columns().objects().unwrap(), expected);
        assert_eq!(page.objects(), expected);
        assert_eq!(ObjectPage::new().columns().objects().unwrap(), vec![]);
    }

    #[test]
    fn the_owner_of_a_run_of_objects_is_written_once() {
        let page = sample();
        let columns = page.columns();
        assert_eq!(columns.customer_ids[0], columns.customer_ids[2]);
        assert_ne!(columns.customer_ids[2], columns.customer_ids[3]);
        // a1 acme a2 beta Gamma ü3 delta b1 other
        assert_eq!(columns.string_ends.len(), 9);
    }

    #[test]
    fn documents_give_their_id_and_sharing_fields() {
        let docs: Vec<Map<String, Value>> = [
            serde_json::json!({"id": "i1", "customerId": "acme", "isGlobal": true,
                               "allowedCustomerIds": ["beta", 7, "gamma"], "title": "x"}),
            serde_json::json!({"id": "i2"}),
        ]
        .into_iter()
        .map(|v| v.as_object().unwrap().clone())
        .collect();
        let page = ObjectPage::from_documents(&docs);
        assert_eq!(
            page.columns().objects().unwrap(),
            vec![
                object("i1", "acme", true, &["beta", "gamma"]),
                object("i2", "", false, &[])
            ]
        );
    }

    #[test]
    fn pages_that_do_not_hold_together_are_refused_with_the_reason() {
        let page = sample();
        let good = page.columns();
        let ends_past = [2, 6, 100];
        let ends_back = [2, 1];
        let cases: Vec<(PageColumns<'_>, InvalidPage)> = vec![
            (
                PageColumns {
                    string_ends: &ends_past,
                    ..good
                },
                InvalidPage::StringEnd {
                    index: 2,
                    end: 100,
                    len: good.strings.len(),
                },
            ),
            (
                PageColumns {
                    string_ends: &ends_back,
                    ..good
                },
                InvalidPage::StringEnd {
                    index: 1,
                    end: 1,
                    len: good.strings.len(),
                },
            ),
            // An end inside a multi-byte character does not end a string.
            (
                PageColumns {
                    strings: "a1ü",
                    string_ends: &[3],
                    ..good
                },
                InvalidPage::StringEnd {
                    index: 0,
                    end: 3,
                    len: 4,
                },
            ),
            (
                PageColumns {
                    customer_ids: &good.customer_ids[..3],
                    ..good
                },
                InvalidPage::ColumnLengths {
                    ids: 4,
                    customer_ids: 3,
                    allowed_ends: 4,
                },
            ),
            (
                PageColumns {
                    ids: &[0, 1, 2, 40],
                    ..good
                },
                InvalidPage::StringIndex {
                    column: "id",
                    object: 3,
                    string: 40,
                    strings: 9,
                },
            ),
            (
                PageColumns {
                    allowed: &[0, 1, 99],
                    ..good
                },
                InvalidPage::StringIndex {
                    column: "allowed customer id",
                    object: 2,
                    string: 99,
                    strings: 9,
                },
            ),
            (
                PageColumns {
                    allowed_ends: &[0, 2, 1, 3],
                    ..good
                },
                InvalidPage::AllowedEnd {
                    object: 2,
                    end: 1,
                    len: 3,
                },
            ),
            (
                PageColumns {
                    allowed_ends: &[0, 2, 3, 4],
                    ..good
                },
                InvalidPage::AllowedEnd {
                    object: 3,
                    end: 4,
                    len: 3,
                },
            ),
            (
                PageColumns {
                    global: &[1, 4],
                    ..good
                },
                InvalidPage::GlobalIndex { index: 4, count: 4 },
            ),
        ];
        for (columns, expected) in cases {
            assert_eq!(columns.objects(), Err(expected.clone()), "{expected}");
        }
    }
}
