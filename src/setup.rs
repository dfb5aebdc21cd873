//! First-run set-up: the operator token a new database needs, the `--demo` data, and the
//! welcome text that tells a newcomer how to try the service.

use std::net::SocketAddr;

use crate::domain::TimeZoneName;
use crate::http::AppError;
use crate::lots::{self, Lot};
use crate::principals::{Role, store as principals};
use crate::store::Store;

pub const DEMO_LOT_ID: i64 = 12;
pub const DEMO_PROVIDER: &str = "demo-provider";

/// On a database with no working operator token, creates one and returns it (shown once).
pub async fn ensure_operator_token(store: &Store) -> Result<Option<String>, AppError> {
    if principals::has_active_operator_token(store).await? {
        return Ok(None);
    }
    let operator = principals::find_or_create(store, Role::Operator, "operator").await?;
    let (_, secret) = principals::issue_token(store, operator.id).await?;
    Ok(Some(secret))
}

/// Tokens the demo prints.
pub struct DemoTokens {
    pub provider: String,
    pub equipment: String,
}

/// Creates, if missing, lot 12 (zone 123, Europe/Stockholm; a barrier car park known to its
/// equipment as facility 1, car park 2, with a default rate), the demo provider and the demo
/// gate, and returns fresh tokens for both.
pub async fn demo(store: &Store) -> Result<DemoTokens, AppError> {
    if lots::store::get(store, DEMO_LOT_ID).await?.is_none() {
        let lot = Lot {
            id: DEMO_LOT_ID,
            name: "Falun centrum".into(),
            zone_code: 123,
            time_zone: TimeZoneName::stockholm(),
            carpark: Some(lots::Carpark {
                facility_no: 1,
                carpark_no: 2,
                capacity: Some(100),
            }),
            grace_minutes: lots::DEFAULT_GRACE_MINUTES,
        };
        match lots::store::insert(store, &lot).await {
            // Another instance created it meanwhile: fine.
            Ok(()) | Err(AppError::Conflict { .. }) => {}
            Err(err) => return Err(err),
        }
    }
    if crate::carparks::rates::list(store, DEMO_LOT_ID)
        .await?
        .is_empty()
    {
        let rate = crate::carparks::rates::RateInput {
            name: Some("Standard".into()),
            currency_code: Some("SEK".into()),
            free_minutes: Some(15),
            period_minutes: Some(60),
            price_per_period: Some(2000),
            max_per_day: Some(15000),
            is_default: Some(true),
            ..Default::default()
        }
        .into_rate(1)
        .map_err(AppError::Validation)?;
        crate::carparks::rates::upsert(store, DEMO_LOT_ID, &rate).await?;
    }
    let provider = principals::find_or_create(store, Role::Provider, DEMO_PROVIDER).await?;
    let (_, provider) = principals::issue_token(store, provider.id).await?;
    let gate = principals::find_or_create(store, Role::Equipment, DEMO_GATE).await?;
    let (_, equipment) = principals::issue_token(store, gate.id).await?;
    Ok(DemoTokens {
        provider,
        equipment,
    })
}

pub const DEMO_GATE: &str = "demo-gate";

/// The address a curl on this machine reaches the service at (`https` when it serves TLS).
pub fn base_url(addr: SocketAddr, tls: bool) -> String {
    let host = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_owned(),
        ip if ip.is_unspecified() => "[::1]".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        std::net::IpAddr::V4(ip) => ip.to_string(),
    };
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{host}:{}", addr.port())
}

/// What `parkhub serve` prints on start: where it listens, and ready-to-paste curl lines for
/// any token it just created.
pub fn welcome_text(base: &str, operator_token: Option<&str>, demo: Option<&DemoTokens>) -> String {
    let demo_provider_token = demo.map(|d| d.provider.as_str());
    let mut out = format!("parkhub is listening on {base}\n");
    if let Some(token) = operator_token {
        out.push_str(&format!(
            "\nA new operator token was created. It is shown only this once; keep it safe:\n  {token}\n\
             Try it:\n  curl -s {base}/api/v1/admin/parking-lots -H 'Authorization: Bearer {token}'\n\
             Or open the console in a browser and sign in with it:\n  {base}/\n"
        ));
    } else {
        out.push_str(&format!(
            "\nConsole: open {base}/ in a browser and sign in with an operator or enforcement token\n\
             (a new one: parkhub token create --role operator --name YOUR-NAME).\n"
        ));
    }
    if let Some(token) = demo_provider_token {
        out.push_str(&format!(
            "\nDemo: lot 12 (zone 123, Europe/Stockholm) and provider '{DEMO_PROVIDER}' are ready.\n\
             Provider token: {token}\n\
             Push a ticket (the seed's example):\n\
             curl -X POST '{base}/api/v1/actions/tickets' \\\n\
             -H 'Authorization: Bearer {token}' \\\n\
             -H 'Content-Type: application/json' \\\n\
             -H 'Accept: application/json' \\\n\
             -d '{{\n\
             \"eventType\": \"CreateOrUpdate\",\n\
             \"ticketId\": \"01985f6f-eafd-7203-b14b-aad5c6c1e253\",\n\
             \"parkingLotId\": 12,\n\
             \"startDate\": \"2023-10-01T12:00:00Z\",\n\
             \"endDate\": \"2023-10-01T12:00:00Z\",\n\
             \"licenseNumber\": \"ABC123\",\n\
             \"ticketCost\": {{\n\
             \"amountInclVat\": 12000,\n\
             \"vatRate\": 25,\n\
             \"currencyCode\": \"SEK\"\n\
             }}\n\
             }}'\n\
             List your tickets:\n\
             curl -s '{base}/api/v1/actions/tickets' -H 'Authorization: Bearer {token}' -H 'Accept: application/json'\n"
        ));
    }
    if let Some(demo) = demo {
        let (provider, gate) = (&demo.provider, &demo.equipment);
        let exe = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "parkhub".into());
        out.push_str(&format!(
            "\nLot 12 is also a barrier car park (facility 1, car park 2). Gate token: {gate}\n\
             Register a plate, watch its events, and drive in and out:\n\
             curl -s -X PUT '{base}/api/v1/identifiers' -H 'Authorization: Bearer {provider}' -H 'Content-Type: application/json' -d '{{\"ticketNo\":\"ABC123\",\"ticketType\":4}}'\n\
             {exe} monitor --url {base} --token {provider}\n\
             curl -s -X POST '{base}/api/v1/carparks/entries' -H 'Authorization: Bearer {gate}' -H 'Content-Type: application/json' -d '{{\"facilityNo\":1,\"carparkNo\":2,\"ticketNo\":\"ABC123\",\"ticketType\":4}}'\n\
             curl -s -X POST '{base}/api/v1/carparks/exits' -H 'Authorization: Bearer {gate}' -H 'Content-Type: application/json' -d '{{\"facilityNo\":1,\"carparkNo\":2,\"ticketNo\":\"ABC123\",\"ticketType\":4}}'\n"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curl_lines_use_a_reachable_address() {
        assert_eq!(
            base_url("0.0.0.0:8080".parse().unwrap(), false),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            base_url("127.0.0.1:9".parse().unwrap(), false),
            "http://127.0.0.1:9"
        );
        assert_eq!(
            base_url("[::]:80".parse().unwrap(), false),
            "http://[::1]:80"
        );
        assert_eq!(
            base_url("0.0.0.0:8443".parse().unwrap(), true),
            "https://127.0.0.1:8443"
        );
    }

    #[test]
    fn welcome_shows_tokens_only_when_created() {
        let addr = base_url("127.0.0.1:8080".parse().unwrap(), false);
        let quiet = welcome_text(&addr, None, None);
        assert!(!quiet.contains("Bearer"));
        let demo = DemoTokens {
            provider: "phk_prov".into(),
            equipment: "phk_gate".into(),
        };
        let loud = welcome_text(&addr, Some("phk_op"), Some(&demo));
        assert!(loud.contains("-H 'Authorization: Bearer phk_gate'"));
        assert!(loud.contains("-H 'Authorization: Bearer phk_op'"));
        assert!(loud.contains("-H 'Authorization: Bearer phk_prov'"));
        assert!(loud.contains("http://127.0.0.1:8080/api/v1/actions/tickets"));
        assert!(loud.contains(
            "Or open the console in a browser and sign in with it:\n  http://127.0.0.1:8080/\n"
        ));
        assert!(quiet.contains("Console: open http://127.0.0.1:8080/ in a browser"));
    }
}
