use super::{ScheduleError, ScheduleInput, ScheduleOutput};

/// `FirstInFirstOut`: the oldest agendas first, whoever they belong to.
pub fn fifo(input: &ScheduleInput<'_>) -> Result<ScheduleOutput, ScheduleError> {
    let mut order: Vec<u32> = (0..input.pending.len() as u32).collect();
    // The host offers the backlog oldest first; sorting (stable) keeps FIFO
    // correct for any caller that does not.
    order.sort_by_key(|&i| input.pending[i as usize].added_ms);
    order.truncate(input.free_slots as usize);
    Ok(ScheduleOutput {
        release: order,
        state: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn oldest_first_up_to_free_slots() {
        let c = customers(&["a", "b"]);
        let p = pending(&[(0, 0, 30), (1, 9, 10), (0, 0, 20), (1, 0, 40)]);
        let running = [0, 0];
        for (slots, expected) in [(0, vec![]), (2, vec![1, 2]), (9, vec![1, 2, 0, 3])] {
            let out = fifo(&input(&c, &p, &running, slots, "{}", &[])).unwrap();
            assert_eq!(out.release, expected, "{slots} slots");
        }
    }
}
