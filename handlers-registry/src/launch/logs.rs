use std::collections::VecDeque;

/// Log lines kept while following a handler (POP's ring buffer size, §5.3.6).
pub const KEPT_LOG_LINES: usize = 1024;
/// Log lines attached to a failure's diagnostic event (§5.3.6).
pub const DIAGNOSTIC_LOG_LINES: usize = 10;

/// The handler's recent stdout/stderr lines, bounded so a chatty handler cannot grow memory.
#[derive(Debug, Default)]
pub(crate) struct LogRing {
    lines: VecDeque<String>,
}

impl LogRing {
    pub fn push(&mut self, line: String) {
        if self.lines.len() == KEPT_LOG_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    pub fn tail(&self, count: usize) -> Vec<String> {
        self.lines
            .iter()
            .skip(self.lines.len().saturating_sub(count))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_lines() {
        let mut ring = LogRing::default();
        for i in 0..KEPT_LOG_LINES + 5 {
            ring.push(i.to_string());
        }
        assert_eq!(ring.lines.len(), KEPT_LOG_LINES);
        assert_eq!(
            ring.tail(2),
            [(KEPT_LOG_LINES + 3).to_string(), (KEPT_LOG_LINES + 4).to_string()]
        );
        assert_eq!(LogRing::default().tail(10), Vec::<String>::new());
    }
}
