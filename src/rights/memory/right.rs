//! One right as the rights memory keeps it: what a check shows or decides by, built from a
//! row of the rights statement and turned back into the row the database would give.

use crate::rights::gather::{PERMIT, RightRow, STAY, TICKET};

/// One right as the memory keeps it: only what a check shows or decides by.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Right {
    Ticket {
        lot: i64,
        provider: Box<str>,
        ticket_id: Box<str>,
        start_at: i64,
        end_at: Option<i64>,
        seq: i64,
    },
    Stay {
        lot: i64,
        reference_no: Box<str>,
        entry_at: i64,
        exit_at: Option<i64>,
        seq: i64,
    },
    Permit(Box<PermitRight>),
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct PermitRight {
    lot: i64,
    permit_id: Box<str>,
    definition_id: i64,
    name: Box<str>,
    time_zone: Box<str>,
    schedule: Box<str>,
    valid_from: Box<str>,
    valid_to: Box<str>,
    created_at: i64,
    starts_at: i64,
    ends_at: i64,
}

impl Right {
    pub(super) fn from_row(row: RightRow) -> Option<Self> {
        Some(match row.kind {
            TICKET => Self::Ticket {
                lot: row.lot_id,
                provider: row.name.unwrap_or_default().into(),
                ticket_id: row.key.into(),
                start_at: row.start_at,
                end_at: row.end_at,
                seq: row.seq?,
            },
            STAY => Self::Stay {
                lot: row.lot_id,
                reference_no: row.key.into(),
                entry_at: row.start_at,
                exit_at: row.end_at,
                seq: row.seq?,
            },
            PERMIT => Self::Permit(Box::new(PermitRight {
                lot: row.lot_id,
                permit_id: row.key.into(),
                definition_id: row.definition_id?,
                name: row.name?.into(),
                time_zone: row.time_zone?.into(),
                schedule: row.schedule?.into(),
                valid_from: row.valid_from?.into(),
                valid_to: row.valid_to?.into(),
                created_at: row.start_at,
                starts_at: row.span_from?,
                ends_at: row.span_to?,
            })),
            _ => return None,
        })
    }

    /// The row the database would have given for `plate`.
    pub(super) fn to_row(&self, plate: &str) -> RightRow {
        match self {
            Self::Ticket {
                lot,
                provider,
                ticket_id,
                start_at,
                end_at,
                seq,
            } => RightRow {
                name: Some(provider.to_string()),
                start_at: *start_at,
                end_at: *end_at,
                seq: Some(*seq),
                ..RightRow::bare(TICKET, plate, ticket_id, *lot)
            },
            Self::Stay {
                lot,
                reference_no,
                entry_at,
                exit_at,
                seq,
            } => RightRow {
                start_at: *entry_at,
                end_at: *exit_at,
                seq: Some(*seq),
                ..RightRow::bare(STAY, plate, reference_no, *lot)
            },
            Self::Permit(p) => RightRow {
                name: Some(p.name.to_string()),
                start_at: p.created_at,
                definition_id: Some(p.definition_id),
                time_zone: Some(p.time_zone.to_string()),
                schedule: Some(p.schedule.to_string()),
                valid_from: Some(p.valid_from.to_string()),
                valid_to: Some(p.valid_to.to_string()),
                span_from: Some(p.starts_at),
                span_to: Some(p.ends_at),
                ..RightRow::bare(PERMIT, plate, &p.permit_id, p.lot)
            },
        }
    }

    /// Whether the check's statement would select this right: at `lot`, begun by `from`, not
    /// ended by `until` (the start of the grace period).
    pub(super) fn applies(&self, want: i64, from: i64, until: i64) -> bool {
        match self {
            Self::Ticket {
                lot,
                start_at,
                end_at,
                ..
            }
            | Self::Stay {
                lot,
                entry_at: start_at,
                exit_at: end_at,
                ..
            } => *lot == want && *start_at <= from && end_at.is_none_or(|end| end > until),
            Self::Permit(p) => p.lot == want && p.starts_at <= from && p.ends_at > until,
        }
    }

    /// Whether both are the same ticket row.
    pub(super) fn same_ticket(&self, other: &Self) -> bool {
        matches!((self, other), (Self::Ticket { seq: a, .. }, Self::Ticket { seq: b, .. }) if a == b)
    }

    /// Whether the statement orders it before `ticket` (by kind, then a ticket's start and
    /// row); `false` when `ticket` is no ticket.
    pub(super) fn ordered_before(&self, ticket: &Self) -> bool {
        let Self::Ticket {
            start_at, seq: row, ..
        } = ticket
        else {
            return false;
        };
        match self {
            Self::Ticket {
                start_at: start,
                seq,
                ..
            } => (start, seq) < (start_at, row),
            Self::Stay { .. } | Self::Permit(_) => false,
        }
    }

    /// Whether it ended before `horizon` (and so no longer matters to a check the memory answers).
    pub(super) fn over_before(&self, horizon: i64) -> bool {
        match self {
            Self::Ticket { end_at, .. }
            | Self::Stay {
                exit_at: end_at, ..
            } => end_at.is_some_and(|end| end <= horizon),
            Self::Permit(p) => p.ends_at <= horizon,
        }
    }
}
