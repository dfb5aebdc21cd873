//! The text frames of the TransactionMonitor WebSocket, with exactly the seed's field names and
//! types, plus `EventType` naming each. Times are UTC, `2020-06-24T14:59:53Z`.

use jiff::Timestamp;
use serde::Serialize;

/// `2020-06-24T14:59:53Z`.
pub fn utc(at: Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// What both transaction events say about the vehicle and the car park.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub facility_no: i64,
    pub carpark_no: i64,
    pub ticket_no: String,
    pub ticket_type: i64,
    pub reference_no: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Started<'a> {
    event_type: &'static str,
    facility_no: i64,
    carpark_no: i64,
    ticket_no: &'a str,
    ticket_type: i64,
    reference_no: &'a str,
    start_time: String,
    #[serde(rename = "EventID")]
    event_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Completed<'a> {
    event_type: &'static str,
    facility_no: i64,
    carpark_no: i64,
    ticket_no: &'a str,
    ticket_type: i64,
    reference_no: &'a str,
    completion_time: String,
    rate_no: i64,
    parking_duration: i64,
    amount: f64,
    #[serde(rename = "EventID")]
    event_id: &'a str,
}

pub fn transaction_started(who: &Identity, start: Timestamp, event_id: &str) -> String {
    serde_json::to_string(&Started {
        event_type: "TransactionStarted",
        facility_no: who.facility_no,
        carpark_no: who.carpark_no,
        ticket_no: &who.ticket_no,
        ticket_type: who.ticket_type,
        reference_no: &who.reference_no,
        start_time: utc(start),
        event_id,
    })
    .unwrap_or_default()
}

pub struct Completion {
    pub at: Timestamp,
    pub rate_no: i64,
    pub duration_minutes: i64,
    /// Major units (the seed's decimal `Amount`).
    pub amount: f64,
}

pub fn transaction_completed(who: &Identity, done: &Completion, event_id: &str) -> String {
    serde_json::to_string(&Completed {
        event_type: "TransactionCompleted",
        facility_no: who.facility_no,
        carpark_no: who.carpark_no,
        ticket_no: &who.ticket_no,
        ticket_type: who.ticket_type,
        reference_no: &who.reference_no,
        completion_time: utc(done.at),
        rate_no: done.rate_no,
        parking_duration: done.duration_minutes,
        amount: done.amount,
        event_id,
    })
    .unwrap_or_default()
}

pub fn heartbeat(at: Timestamp) -> String {
    serde_json::json!({ "Heartbeat": utc(at) }).to_string()
}

/// An error told to the subscriber before the server closes the socket.
pub fn error(code: &str, message: &str) -> String {
    serde_json::json!({ "Error": code, "Message": message }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn who() -> Identity {
        Identity {
            facility_no: 1,
            carpark_no: 2,
            ticket_no: "ABC123".into(),
            ticket_type: 4,
            reference_no: "R-5".into(),
        }
    }

    #[test]
    fn frames_have_the_seeds_fields_and_types() {
        let at: Timestamp = "2020-06-24T14:59:53.25Z".parse().unwrap();
        let started: Value = serde_json::from_str(&transaction_started(&who(), at, "E-7")).unwrap();
        assert_eq!(
            started,
            json!({"EventType": "TransactionStarted", "FacilityNo": 1, "CarparkNo": 2,
                   "TicketNo": "ABC123", "TicketType": 4, "ReferenceNo": "R-5",
                   "StartTime": "2020-06-24T14:59:53Z", "EventID": "E-7"})
        );
        let done = Completion {
            at,
            rate_no: 7,
            duration_minutes: 8,
            amount: 9.1,
        };
        let completed: Value =
            serde_json::from_str(&transaction_completed(&who(), &done, "E-10")).unwrap();
        assert_eq!(
            completed,
            json!({"EventType": "TransactionCompleted", "FacilityNo": 1, "CarparkNo": 2,
                   "TicketNo": "ABC123", "TicketType": 4, "ReferenceNo": "R-5",
                   "CompletionTime": "2020-06-24T14:59:53Z", "RateNo": 7, "ParkingDuration": 8,
                   "Amount": 9.1, "EventID": "E-10"})
        );
        let beat: Value = serde_json::from_str(&heartbeat(at)).unwrap();
        assert_eq!(beat, json!({"Heartbeat": "2020-06-24T14:59:53Z"}));
    }
}
