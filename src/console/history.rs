//! Occupancy over time, from stays: how many vehicles were inside at each sample instant.

/// The sample instants (unix µs): every whole hour of the last `hours` hours, then `now`.
pub fn sample_points(now: i64, hours: i64) -> Vec<i64> {
    const HOUR: i64 = 3_600_000_000;
    let first = (now - hours * HOUR).div_euclid(HOUR) * HOUR + HOUR;
    let mut points: Vec<i64> = (0..hours)
        .map(|h| first + h * HOUR)
        .filter(|p| *p < now)
        .collect();
    points.push(now);
    points
}

/// For each point, the stays (entry, exit) with entry at or before it and no exit yet then.
pub fn inside_at(stays: &[(i64, Option<i64>)], points: &[i64]) -> Vec<i64> {
    points
        .iter()
        .map(|&p| {
            stays
                .iter()
                .filter(|(entry, exit)| *entry <= p && exit.is_none_or(|x| x > p))
                .count() as i64
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000_000;

    #[test]
    fn hourly_points_end_with_now() {
        let now = 10 * H + 30 * 60_000_000; // 10:30
        let points = sample_points(now, 3);
        assert_eq!(points, vec![8 * H, 9 * H, 10 * H, now]);
        let on_the_hour = sample_points(10 * H, 2);
        assert_eq!(on_the_hour, vec![9 * H, 10 * H]);
    }

    #[test]
    fn a_stay_counts_from_its_entry_until_its_exit() {
        let stays = [(H, Some(3 * H)), (2 * H, None), (5 * H, Some(6 * H))];
        assert_eq!(
            inside_at(&stays, &[0, H, 2 * H, 3 * H, 4 * H, 5 * H, 6 * H]),
            vec![0, 1, 2, 1, 1, 2, 1]
        );
    }
}
