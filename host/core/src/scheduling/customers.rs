//! Customer ids as a scheduler receives them: one string holding every id
//! back to back, and where each ends.
//!
//! This is the layout of the `scheduler` world's input since
//! `pop:plugin@0.2.0`: copying a hundred ids into a WebAssembly scheduler
//! as one string is one allocation in the guest instead of a hundred, which
//! was half of what moving a 10,000-agenda backlog into a plugin cost.

use std::fmt;
use std::ops::Index;

/// A borrowed list of customer ids (see the module docs). Indexing gives
/// the id as `&str`; every end is checked once, when the view is made.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CustomerIds<'a> {
    text: &'a str,
    ends: &'a [u32],
}

/// Ends that do not cut `text` into ids.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "customer id #{index} ends at byte {end}, which is before the previous end, past the {len} bytes of ids, or inside a character"
)]
pub struct InvalidCustomerIds {
    pub index: usize,
    pub end: u32,
    pub len: usize,
}

impl<'a> CustomerIds<'a> {
    /// No customers.
    pub const EMPTY: CustomerIds<'static> = CustomerIds { text: "", ends: &[] };

    /// View `text` as ids ending at `ends` (id `i` is
    /// `text[ends[i - 1]..ends[i]]`, from 0 for the first). Each end must be
    /// at or after the previous one, within `text` and on a character
    /// boundary.
    pub fn new(text: &'a str, ends: &'a [u32]) -> Result<Self, InvalidCustomerIds> {
        let mut start = 0usize;
        for (index, &end) in ends.iter().enumerate() {
            let at = end as usize;
            if at < start || at > text.len() || !text.is_char_boundary(at) {
                return Err(InvalidCustomerIds {
                    index,
                    end,
                    len: text.len(),
                });
            }
            start = at;
        }
        Ok(Self { text, ends })
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Customer `index`'s id.
    pub fn get(&self, index: usize) -> Option<&'a str> {
        let end = *self.ends.get(index)? as usize;
        let start = match index {
            0 => 0,
            _ => self.ends[index - 1] as usize,
        };
        // Checked in `new`: in bounds, in order, on character boundaries.
        Some(&self.text[start..end])
    }

    /// The ids in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &'a str> + 'a {
        let ids = *self;
        (0..ids.len()).map(move |index| ids.get(index).unwrap_or_default())
    }

    /// Every id back to back.
    pub fn text(&self) -> &'a str {
        self.text
    }

    /// Where each id ends in [`Self::text`].
    pub fn ends(&self) -> &'a [u32] {
        self.ends
    }
}

impl Index<usize> for CustomerIds<'_> {
    type Output = str;

    fn index(&self, index: usize) -> &str {
        match self.get(index) {
            Some(id) => id,
            None => panic!("customer #{index} of {}", self.len()),
        }
    }
}

impl fmt::Debug for CustomerIds<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// An owned list of customer ids in the same layout, built by pushing ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerList {
    text: String,
    ends: Vec<u32>,
}

impl CustomerList {
    pub fn new() -> Self {
        Self::default()
    }

    /// Append `id`; returns its index.
    ///
    /// # Panics
    /// When the ids together pass 4 GiB, which no backlog comes near.
    pub fn push(&mut self, id: &str) -> u32 {
        self.text.push_str(id);
        let end = u32::try_from(self.text.len()).expect("customer ids fit in 4 GiB");
        self.ends.push(end);
        (self.ends.len() - 1) as u32
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The list as a scheduler input takes it.
    pub fn ids(&self) -> CustomerIds<'_> {
        // Valid by construction: every end is where a pushed id ended.
        CustomerIds {
            text: &self.text,
            ends: &self.ends,
        }
    }
}

impl<S: AsRef<str>> FromIterator<S> for CustomerList {
    fn from_iter<I: IntoIterator<Item = S>>(ids: I) -> Self {
        let mut list = Self::new();
        for id in ids {
            list.push(id.as_ref());
        }
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_back_as_pushed() {
        let list: CustomerList = ["acme", "", "globex", "żółw"].into_iter().collect();
        let ids = list.ids();
        assert_eq!(ids.len(), 4);
        assert_eq!(ids.iter().collect::<Vec<_>>(), ["acme", "", "globex", "żółw"]);
        assert_eq!(&ids[2], "globex");
        assert_eq!(ids.get(4), None);
        assert_eq!(ids.text(), "acmeglobexżółw");
        assert_eq!(ids.ends(), [4, 4, 10, 17]);
        assert_eq!(CustomerIds::new(ids.text(), ids.ends()), Ok(ids));
        assert!(CustomerIds::EMPTY.is_empty());
        assert_eq!(format!("{ids:?}"), r#"["acme", "", "globex", "żółw"]"#);
    }

    #[test]
    fn ends_that_do_not_cut_the_text_into_ids_are_refused() {
        let text = "abżc";
        for (ends, index) in [(&[2u32, 1][..], 1), (&[9][..], 0), (&[3][..], 0), (&[1, 2, 6][..], 2)] {
            let error = CustomerIds::new(text, ends).unwrap_err();
            assert_eq!(error.index, index, "{ends:?}");
        }
        assert!(CustomerIds::new(text, &[2, 4, 5]).is_ok());
    }
}
