//! What a catch-up learns changed (read from `right_changes` on SQLite, by the polls on
//! PostgreSQL): plates to read again, and plates whose only changes were new tickets, with those
//! tickets to add to what the memory holds of them ([`super::plates::Plates::add`]).

use std::collections::BTreeMap;

use super::right::Right;

/// What was learned and not yet applied.
#[derive(Debug, PartialEq)]
pub(super) enum Changed {
    /// These plates.
    Plates(PlateChanges),
    /// Everything (a change many plates share, or the first read).
    Everything,
}

/// What changed of some plates.
#[derive(Debug, Default, PartialEq)]
pub(super) struct PlateChanges {
    /// Plates to read again.
    pub(super) forget: Vec<String>,
    /// Plates whose only changes were new tickets, with those tickets' rights.
    pub(super) added: Vec<(String, Vec<Right>)>,
}

impl PlateChanges {
    /// Whether no plate changed.
    pub(super) fn is_empty(&self) -> bool {
        self.forget.is_empty() && self.added.is_empty()
    }

    /// Plates to read again and nothing to add.
    #[cfg(test)]
    pub(super) fn forget(plates: &[&str]) -> Self {
        Self {
            forget: plates.iter().map(|p| p.to_string()).collect(),
            added: Vec::new(),
        }
    }
}

/// A ticket a change inserted, as read with the change (each field null when the ticket is gone).
#[derive(Debug, Default, sqlx::FromRow)]
pub(super) struct NewTicket {
    /// The row (`tickets.id`) the change names: null when it inserted no ticket.
    pub(super) ticket: Option<i64>,
    /// The ticket's plate now.
    pub(super) now_of: Option<String>,
    pub(super) status: Option<String>,
    pub(super) ticket_id: Option<String>,
    pub(super) provider: Option<String>,
    pub(super) start_at: Option<i64>,
    pub(super) end_at: Option<i64>,
    pub(super) lot: Option<i64>,
}

impl NewTicket {
    /// The right it adds to `plate`, if it is still there, of that plate, active and of a
    /// provider; otherwise the plate is read again (a later change to it is read later too).
    fn right_of(self, plate: &str) -> Option<Right> {
        let (Some(seq), Some(now_of), Some(status), Some(ticket_id), Some(provider)) = (
            self.ticket,
            self.now_of,
            self.status,
            self.ticket_id,
            self.provider,
        ) else {
            return None;
        };
        if now_of != plate || status != "active" {
            return None;
        }
        Some(Right::Ticket {
            lot: self.lot?,
            provider: provider.into(),
            ticket_id: ticket_id.into(),
            start_at: self.start_at?,
            end_at: self.end_at,
            seq,
        })
    }
}

/// Changes gathered in the order they were committed: each plate's new tickets, or `None`:
/// read it again.
#[derive(Debug, Default)]
pub(super) struct Gathering(BTreeMap<String, Option<Vec<Right>>>);

impl Gathering {
    /// A change of `plate` (`None`: of everything, which it does not keep; returns `false`)
    /// that inserted `ticket`, if it did.
    pub(super) fn push(&mut self, plate: Option<String>, ticket: NewTicket) -> bool {
        let Some(plate) = plate else {
            return false;
        };
        let added = ticket.right_of(&plate);
        self.learn(plate, added.map(|right| vec![right]));
        true
    }

    /// `plate` got the new tickets `added`, or (`None`) changed otherwise.
    fn learn(&mut self, plate: String, added: Option<Vec<Right>>) {
        let rights = self.0.entry(plate).or_insert_with(|| Some(Vec::new()));
        match (rights.as_mut(), added) {
            (Some(rights), Some(added)) => rights.extend(added),
            _ => *rights = None,
        }
    }

    /// Gathers what was gathered elsewhere too (what a catch-up took and gives back).
    pub(super) fn merge(&mut self, changes: PlateChanges) {
        for plate in changes.forget {
            self.learn(plate, None);
        }
        for (plate, rights) in changes.added {
            self.learn(plate, Some(rights));
        }
    }

    /// How many plates changed.
    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    pub(super) fn finish(self) -> PlateChanges {
        let mut changes = PlateChanges::default();
        for (plate, rights) in self.0 {
            match rights {
                Some(rights) => changes.added.push((plate, rights)),
                None => changes.forget.push(plate),
            }
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_ticket(seq: i64, plate: &str, status: &str) -> NewTicket {
        NewTicket {
            ticket: Some(seq),
            now_of: Some(plate.to_owned()),
            status: Some(status.to_owned()),
            ticket_id: Some(format!("t-{seq}")),
            provider: Some("easypark".to_owned()),
            start_at: Some(10),
            end_at: None,
            lot: Some(12),
        }
    }

    fn added(changes: &PlateChanges) -> Vec<(&str, usize)> {
        changes
            .added
            .iter()
            .map(|(plate, rights)| (plate.as_str(), rights.len()))
            .collect()
    }

    #[test]
    fn only_plates_that_just_got_tickets_still_theirs_and_active_get_them_added() {
        let mut gathering = Gathering::default();
        let some = |plate: &str| Some(plate.to_owned());
        assert!(gathering.push(some("AAA1"), new_ticket(1, "AAA1", "active")));
        assert!(gathering.push(some("AAA1"), new_ticket(2, "AAA1", "active")));
        // Of another plate now, canceled, or gone: read again.
        assert!(gathering.push(some("BBB2"), new_ticket(3, "XXX9", "active")));
        assert!(gathering.push(some("CCC3"), new_ticket(4, "CCC3", "canceled")));
        assert!(gathering.push(
            some("DDD4"),
            NewTicket {
                ticket: Some(5),
                ..NewTicket::default()
            }
        ));
        // A ticket, then another change of the plate (no ticket named), or the other way.
        assert!(gathering.push(some("EEE5"), new_ticket(6, "EEE5", "active")));
        assert!(gathering.push(some("EEE5"), NewTicket::default()));
        assert!(gathering.push(some("FFF6"), NewTicket::default()));
        assert!(gathering.push(some("FFF6"), new_ticket(7, "FFF6", "active")));
        assert!(!gathering.push(None, NewTicket::default()), "everything");
        assert_eq!(gathering.len(), 6);
        let changes = gathering.finish();
        assert_eq!(changes.forget, ["BBB2", "CCC3", "DDD4", "EEE5", "FFF6"]);
        assert_eq!(added(&changes), [("AAA1", 2)]);
    }

    #[test]
    fn what_is_given_back_is_gathered_with_what_came_since() {
        let mut gathering = Gathering::default();
        gathering.push(Some("AAA1".to_owned()), new_ticket(1, "AAA1", "active"));
        gathering.push(Some("BBB2".to_owned()), new_ticket(2, "BBB2", "active"));
        let mut back = Gathering::default();
        back.push(Some("AAA1".to_owned()), new_ticket(3, "AAA1", "active"));
        back.push(Some("BBB2".to_owned()), NewTicket::default());
        back.push(Some("CCC3".to_owned()), new_ticket(4, "CCC3", "active"));
        gathering.merge(back.finish());
        let changes = gathering.finish();
        assert_eq!(changes.forget, ["BBB2"]);
        assert_eq!(added(&changes), [("AAA1", 2), ("CCC3", 1)]);
    }
}
