//! What the rights memory holds: every plate's rights, as compact as a check allows, and the
//! rows a check's statement would give, answered from them.

use std::collections::HashMap;

use super::right::Right;
use crate::rights::gather::RightRow;

/// The rights of every plate, as of change `through`: those of a plate that changed since it
/// was last read are unknown until it is read again (by the check that asks for it, or the
/// task once many are), so a write costs the memory nothing but forgetting; a new ticket,
/// read with its change, is added instead ([`Plates::add`]).
#[derive(Default)]
pub(super) struct Plates {
    by_plate: HashMap<Box<str>, Box<[Right]>>,
    /// Plates whose rights changed and were not read since, each with the number of its
    /// latest change here (see [`Plates::forget`]).
    unknown: HashMap<Box<str>, u64>,
    /// Changes forgotten so far: the number of the latest.
    forgotten: u64,
    /// Every change up to this number is in `by_plate` or `unknown`.
    pub(super) through: i64,
    /// Rights that ended before this instant (unix µs) may be missing.
    pub(super) horizon: i64,
    pub(super) loaded: bool,
}

/// A plate whose rights changed since they were last read: read them again, and
/// [`Plates::put_if_unchanged`] with this mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Unknown(u64);

impl Plates {
    /// Rows in the order the statement gives them (by plate, then as a check orders them).
    pub(super) fn from_rows(
        rows: impl IntoIterator<Item = RightRow>,
        through: i64,
        horizon: i64,
    ) -> Self {
        let mut building = Building::new(through, horizon);
        for row in rows {
            building.push(row);
        }
        building.finish()
    }

    /// Replaces what it holds of `plate` (forgets the plate if `rights` is empty).
    fn put(&mut self, plate: String, rights: Vec<Right>) {
        if rights.is_empty() {
            self.by_plate.remove(plate.as_str());
        } else {
            self.by_plate
                .insert(plate.into_boxed_str(), rights.into_boxed_slice());
        }
    }

    /// Takes `loaded`'s place: a new reading of everything. The marks go on from where they
    /// were, so a read begun before it, marked before it, is never taken for a later one's.
    pub(super) fn replace_with(&mut self, loaded: Plates) {
        let forgotten = self.forgotten;
        *self = loaded;
        self.forgotten = forgotten;
    }

    /// The rights of `plate` changed: unknown until read again.
    pub(super) fn forget(&mut self, plate: String) {
        self.by_plate.remove(plate.as_str());
        self.forgotten += 1;
        self.unknown.insert(plate.into_boxed_str(), self.forgotten);
    }

    /// Adds new tickets' `rights` to what it holds of `plate` (nothing, if it holds no right of
    /// it), each where the statement would order it, in place of a ticket of the same row held
    /// already (a read of the plate that saw it); a plate whose rights are unknown changed once
    /// more instead (see [`Plates::forget`]).
    pub(super) fn add(&mut self, plate: String, rights: Vec<Right>) {
        if self.unknown.contains_key(plate.as_str()) {
            self.forget(plate);
            return;
        }
        let mut held = self
            .by_plate
            .remove(plate.as_str())
            .map(Vec::from)
            .unwrap_or_default();
        for right in rights {
            held.retain(|r| !r.same_ticket(&right));
            if !right.over_before(self.horizon) {
                let at = held.partition_point(|r| r.ordered_before(&right));
                held.insert(at, right);
            }
        }
        self.put(plate, held);
    }

    /// Holds `rights`, read for `plate` after it was found unknown as `mark`, unless it changed
    /// again since (a read begun before that change may not have seen it). Returns whether it
    /// was held.
    pub(super) fn put_if_unchanged(
        &mut self,
        plate: &str,
        mark: Unknown,
        rights: Vec<Right>,
    ) -> bool {
        if self.unknown.get(plate) != Some(&mark.0) {
            return false;
        }
        self.unknown.remove(plate);
        self.put(plate.to_owned(), rights);
        true
    }

    /// Up to `most` of the plates to read again, with their marks.
    pub(super) fn some_unknown(&self, most: usize) -> Vec<(String, Unknown)> {
        self.unknown
            .iter()
            .take(most)
            .map(|(plate, mark)| (plate.to_string(), Unknown(*mark)))
            .collect()
    }

    /// How many plates are to be read again.
    pub(super) fn unknown_len(&self) -> usize {
        self.unknown.len()
    }

    /// The rows of `plate` the check's statement would give at `lot` for `from` and `until`,
    /// unless its rights changed since they were read.
    pub(super) fn rows_at(
        &self,
        plate: &str,
        lot: i64,
        from: i64,
        until: i64,
    ) -> Result<Vec<RightRow>, Unknown> {
        if let Some(mark) = self.unknown.get(plate) {
            return Err(Unknown(*mark));
        }
        Ok(self
            .by_plate
            .get(plate)
            .map(|rights| rows_at(rights, plate, lot, from, until))
            .unwrap_or_default())
    }

    /// How many plates it holds a right for.
    pub(super) fn len(&self) -> usize {
        self.by_plate.len()
    }

    pub(super) fn prune(&mut self, horizon: i64) {
        self.by_plate.retain(|_, rights| {
            if rights.iter().any(|r| r.over_before(horizon)) {
                let kept: Vec<Right> = rights
                    .iter()
                    .filter(|r| !r.over_before(horizon))
                    .cloned()
                    .collect();
                *rights = kept.into_boxed_slice();
            }
            !rights.is_empty()
        });
        self.horizon = self.horizon.max(horizon);
    }
}

/// The rows of `plate` among `rights` that the check's statement would give at `lot` for
/// `from` and `until`.
pub(super) fn rows_at(
    rights: &[Right],
    plate: &str,
    lot: i64,
    from: i64,
    until: i64,
) -> Vec<RightRow> {
    rights
        .iter()
        .filter(|r| r.applies(lot, from, until))
        .map(|r| r.to_row(plate))
        .collect()
}

/// [`Plates`] built from rows as they arrive, in the order the statement gives them: a
/// plate's rows together.
pub(super) struct Building {
    plates: Plates,
    current: Option<(String, Vec<Right>)>,
}

impl Building {
    pub(super) fn new(through: i64, horizon: i64) -> Self {
        Self {
            plates: Plates {
                through,
                horizon,
                loaded: true,
                ..Plates::default()
            },
            current: None,
        }
    }

    pub(super) fn push(&mut self, row: RightRow) {
        if let Some((plate, rights)) = self.current.take_if(|(plate, _)| *plate != row.plate) {
            self.plates.put(plate, rights);
        }
        let (_, rights) = self
            .current
            .get_or_insert_with(|| (row.plate.clone(), Vec::new()));
        rights.extend(Right::from_row(row));
    }

    pub(super) fn finish(mut self) -> Plates {
        if let Some((plate, rights)) = self.current.take() {
            self.plates.put(plate, rights);
        }
        self.plates
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::rights::gather::{PERMIT, TICKET};

    pub(in crate::rights::memory) fn ticket(
        plate: &str,
        lot: i64,
        start_at: i64,
        end_at: Option<i64>,
    ) -> RightRow {
        RightRow {
            name: Some("provider".to_owned()),
            start_at,
            end_at,
            seq: Some(start_at),
            ..RightRow::bare(TICKET, plate, &format!("t-{plate}-{start_at}"), lot)
        }
    }

    fn permit(plate: &str, lot: i64, starts_at: i64, ends_at: i64) -> RightRow {
        RightRow {
            kind: PERMIT,
            definition_id: Some(7),
            name: Some("Mornings".to_owned()),
            time_zone: Some("Europe/Stockholm".to_owned()),
            schedule: Some("[]".to_owned()),
            valid_from: Some("2025-01-01".to_owned()),
            valid_to: Some("2025-12-31".to_owned()),
            seq: None,
            end_at: None,
            span_from: Some(starts_at),
            span_to: Some(ends_at),
            ..ticket(plate, lot, 1, None)
        }
    }

    #[test]
    fn rows_are_kept_by_plate_in_the_order_read_and_come_back_as_read() {
        let rows = vec![
            ticket("AAA111", 12, 10, Some(20)),
            ticket("AAA111", 14, 15, None),
            permit("AAA111", 12, 0, 100),
            ticket("BBB222", 12, 5, None),
        ];
        let plates = Plates::from_rows(rows, 3, 0);
        assert_eq!(plates.by_plate.len(), 2);
        assert_eq!(plates.by_plate["AAA111"].len(), 3);
        let back = plates.by_plate["AAA111"][2].to_row("AAA111");
        let original = permit("AAA111", 12, 0, 100);
        assert_eq!(
            (
                back.kind,
                back.key,
                back.schedule,
                back.span_from,
                back.span_to
            ),
            (
                original.kind,
                original.key,
                original.schedule,
                original.span_from,
                original.span_to
            )
        );
    }

    /// The edges the statement has: begun at `from` counts, ended at `until` does not; a
    /// permit's span is [starts_at, ends_at).
    #[test]
    fn a_right_applies_as_the_statement_selects_it() {
        let plates = Plates::from_rows(
            vec![
                ticket("AAA111", 12, 10, Some(20)),
                ticket("AAA111", 14, 10, None),
                permit("AAA111", 12, 30, 40),
            ],
            1,
            0,
        );
        let rows = |from, until| {
            plates
                .rows_at("AAA111", 12, from, until)
                .unwrap()
                .into_iter()
                .map(|r| r.key)
                .collect::<Vec<_>>()
        };
        assert_eq!(rows(10, 10), ["t-AAA111-10"]);
        assert_eq!(rows(9, 9), Vec::<String>::new());
        assert_eq!(rows(25, 19), ["t-AAA111-10"], "ended within the grace");
        assert_eq!(rows(25, 20), Vec::<String>::new());
        assert_eq!(rows(30, 30), ["t-AAA111-1"]);
        assert_eq!(rows(50, 39), ["t-AAA111-1"]);
        assert_eq!(rows(50, 40), Vec::<String>::new());
        assert_eq!(plates.rows_at("ZZZ999", 12, 10, 10).map(|r| r.len()), Ok(0));
    }

    #[test]
    fn pruning_drops_what_ended_and_plates_left_with_nothing() {
        let mut plates = Plates::from_rows(
            vec![
                ticket("AAA111", 12, 10, Some(20)),
                ticket("AAA111", 12, 30, None),
                ticket("BBB222", 12, 10, Some(20)),
                permit("CCC333", 12, 0, 20),
                permit("DDD444", 12, 0, 21),
            ],
            1,
            0,
        );
        plates.prune(20);
        assert_eq!(plates.horizon, 20);
        let mut left: Vec<(&str, usize)> = plates
            .by_plate
            .iter()
            .map(|(plate, rights)| (&**plate, rights.len()))
            .collect();
        left.sort();
        assert_eq!(left, [("AAA111", 1), ("DDD444", 1)]);
    }

    #[test]
    fn a_plate_read_again_with_nothing_left_is_forgotten() {
        let mut plates = Plates::from_rows(vec![ticket("AAA111", 12, 10, None)], 1, 0);
        plates.put("AAA111".to_owned(), Vec::new());
        assert!(plates.by_plate.is_empty());
    }

    fn rights(row: RightRow) -> Vec<Right> {
        Right::from_row(row).into_iter().collect()
    }

    #[test]
    fn a_changed_plate_is_unknown_until_read_again_and_an_older_read_is_refused() {
        let mut plates = Plates::from_rows(vec![ticket("AAA111", 12, 10, None)], 1, 0);
        plates.forget("AAA111".to_owned());
        let Err(first) = plates.rows_at("AAA111", 12, 10, 10) else {
            panic!("a changed plate is answered from memory");
        };
        assert_eq!(plates.unknown_len(), 1);
        // It changes again while the first read is under way: that read may miss the change.
        plates.forget("AAA111".to_owned());
        let Err(second) = plates.rows_at("AAA111", 12, 10, 10) else {
            panic!("a changed plate is answered from memory");
        };
        assert!(!plates.put_if_unchanged("AAA111", first, rights(ticket("AAA111", 12, 10, None))));
        assert!(plates.rows_at("AAA111", 12, 10, 10).is_err());
        assert!(plates.put_if_unchanged("AAA111", second, rights(ticket("AAA111", 12, 20, None))));
        assert_eq!(plates.unknown_len(), 0);
        let rows = plates.rows_at("AAA111", 12, 20, 20).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].key, "t-AAA111-20");
        assert!(
            !plates.put_if_unchanged("AAA111", second, Vec::new()),
            "read again already"
        );
        assert_eq!(plates.some_unknown(10), []);
        plates.forget("BBB222".to_owned());
        assert_eq!(plates.some_unknown(10).len(), 1);
    }

    fn keys(plates: &Plates, plate: &str) -> Vec<String> {
        plates
            .rows_at(plate, 12, i64::MAX - 1, 0)
            .expect("known")
            .into_iter()
            .map(|r| r.key)
            .collect()
    }

    #[test]
    fn new_tickets_are_added_in_the_statements_order_once_each() {
        let mut plates = Plates::from_rows(
            vec![
                ticket("AAA111", 12, 10, None),
                ticket("AAA111", 12, 30, None),
                permit("AAA111", 12, 0, 100),
            ],
            1,
            5,
        );
        plates.add(
            "AAA111".to_owned(),
            [
                ticket("AAA111", 12, 20, None),
                ticket("AAA111", 12, 40, Some(50)),
                // Over before the memory's horizon: not kept.
                ticket("AAA111", 12, 2, Some(5)),
            ]
            .into_iter()
            .flat_map(rights)
            .collect(),
        );
        let expected = [
            "t-AAA111-10",
            "t-AAA111-20",
            "t-AAA111-30",
            "t-AAA111-40",
            "t-AAA111-1",
        ];
        assert_eq!(keys(&plates, "AAA111"), expected, "the permit last");
        // A ticket held already (a read saw it) is not held twice.
        plates.add("AAA111".to_owned(), rights(ticket("AAA111", 12, 20, None)));
        assert_eq!(keys(&plates, "AAA111"), expected);
        // A plate it held nothing of.
        plates.add("BBB222".to_owned(), rights(ticket("BBB222", 12, 10, None)));
        assert_eq!(keys(&plates, "BBB222"), ["t-BBB222-10"]);
        assert_eq!(plates.len(), 2);
        // A plate to read again stays so, and a read under way is refused.
        plates.forget("CCC333".to_owned());
        let Err(mark) = plates.rows_at("CCC333", 12, 10, 10) else {
            panic!("a changed plate is answered from memory");
        };
        plates.add("CCC333".to_owned(), rights(ticket("CCC333", 12, 10, None)));
        assert!(plates.rows_at("CCC333", 12, 10, 10).is_err());
        assert!(!plates.put_if_unchanged("CCC333", mark, Vec::new()));
    }

    #[test]
    fn a_read_marked_before_a_full_reload_is_refused_after_it() {
        let mut plates = Plates::from_rows(vec![ticket("AAA111", 12, 10, None)], 1, 0);
        plates.forget("AAA111".to_owned());
        let Err(before) = plates.rows_at("AAA111", 12, 10, 10) else {
            panic!("a changed plate is answered from memory");
        };
        plates.replace_with(Plates::from_rows(
            vec![ticket("AAA111", 12, 20, None)],
            2,
            0,
        ));
        plates.forget("AAA111".to_owned());
        assert!(
            !plates.put_if_unchanged("AAA111", before, rights(ticket("AAA111", 12, 10, None))),
            "a read from before the reload"
        );
        assert!(plates.rows_at("AAA111", 12, 20, 20).is_err());
    }
}
