//! Responses that every operation of a kind can give, documented in one place: they come from
//! the shared extractors ([`Principal`](super::Principal), [`Json`](super::Json)), not from the
//! handlers, so each handler's annotation lists only what its own logic answers.
//!
//! - a bearer-secured operation answers 401 (no, a malformed, an unknown or a revoked token)
//!   and 429 (the token is over its request rate, with `Retry-After`);
//! - one whose security requirement names roles (`security(("bearer" = ["operator"]))`, the
//!   roles `Principal::require` admits) also answers 403 to a token of any other role;
//! - one with a JSON request body answers 400 (not JSON), 413 (over the size limit) and 415
//!   (not `Content-Type: application/json`).

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr};

use crate::principals::Role;

/// Adds the shared responses to every operation of `doc` that does not document them itself.
pub fn add_shared_responses(doc: &mut OpenApi) {
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            add_to(operation);
        }
    }
}

fn add_to(operation: &mut Operation) {
    if let Some(roles) = bearer_roles(operation) {
        add(
            operation,
            "401",
            "no token, a malformed one, or one that is unknown or revoked",
        );
        add_with_header(
            operation,
            "429",
            "the token is over its request rate; retry after Retry-After seconds",
            "retry-after",
            "whole seconds to wait",
        );
        if !roles.is_empty()
            && !Role::ALL
                .iter()
                .all(|r| roles.iter().any(|s| s == r.as_str()))
        {
            let description = format!("the token's role is not {}", roles.join(" or "));
            add(operation, "403", &description);
        }
    }
    let json_body = operation
        .request_body
        .as_ref()
        .is_some_and(|body| body.content.contains_key("application/json"));
    if json_body {
        add(operation, "400", "the body is not valid JSON");
        add(
            operation,
            "413",
            "the body is larger than the limit of 1 MiB",
        );
        add(
            operation,
            "415",
            "the body is not sent as Content-Type: application/json",
        );
    }
}

/// Who may call each operation, from the document's security requirements: the key is the
/// method (upper case) and the route template; absent routes are open. An empty list admits
/// every role. The authorization middleware enforces exactly what the document says.
pub fn access_table(doc: &OpenApi) -> std::collections::HashMap<(String, String), Vec<Role>> {
    let mut table = std::collections::HashMap::new();
    for (path, item) in &doc.paths.paths {
        let operations = [
            ("GET", &item.get),
            ("PUT", &item.put),
            ("POST", &item.post),
            ("DELETE", &item.delete),
            ("PATCH", &item.patch),
        ];
        for (method, operation) in operations {
            if let Some(roles) = operation.as_ref().and_then(bearer_roles) {
                let roles = roles.iter().filter_map(|r| Role::parse(r)).collect();
                table.insert((method.to_owned(), path.clone()), roles);
            }
        }
    }
    table
}

/// The roles a bearer-secured operation admits (empty: any role); `None` when it is open.
fn bearer_roles(operation: &Operation) -> Option<Vec<String>> {
    let requirements = operation.security.as_ref()?;
    requirements.iter().find_map(|requirement| {
        let value = serde_json::to_value(requirement).ok()?;
        let scopes = value.get("bearer")?.as_array()?;
        Some(
            scopes
                .iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect(),
        )
    })
}

fn add(operation: &mut Operation, status: &str, description: &str) {
    operation
        .responses
        .responses
        .entry(status.to_owned())
        .or_insert_with(|| RefOr::T(error_response(description)));
}

fn add_with_header(
    operation: &mut Operation,
    status: &str,
    description: &str,
    header: &str,
    header_description: &str,
) {
    let value = HeaderBuilder::new()
        .schema(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1)),
        )
        .description(Some(header_description))
        .build();
    operation
        .responses
        .responses
        .entry(status.to_owned())
        .or_insert_with(|| {
            RefOr::T(
                error_response_builder(description)
                    .header(header, value)
                    .build(),
            )
        });
}

fn error_response(description: &str) -> Response {
    error_response_builder(description).build()
}

fn error_response_builder(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorBody")))
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use utoipa::openapi::path::OperationBuilder;
    use utoipa::openapi::request_body::RequestBodyBuilder;
    use utoipa::openapi::security::SecurityRequirement;

    use super::*;

    fn statuses(operation: &Operation) -> Vec<&str> {
        operation
            .responses
            .responses
            .keys()
            .map(String::as_str)
            .collect()
    }

    #[test]
    fn a_role_restricted_json_operation_gets_every_shared_response() {
        let mut operation = OperationBuilder::new()
            .security(SecurityRequirement::new("bearer", ["operator"]))
            .request_body(Some(
                RequestBodyBuilder::new()
                    .content("application/json", ContentBuilder::new().build())
                    .build(),
            ))
            .build();
        add_to(&mut operation);
        assert_eq!(
            statuses(&operation),
            ["400", "401", "403", "413", "415", "429"]
        );
    }

    #[test]
    fn any_role_means_no_403_and_an_open_operation_gets_nothing() {
        let mut any_role = OperationBuilder::new()
            .security(SecurityRequirement::new("bearer", Vec::<String>::new()))
            .build();
        add_to(&mut any_role);
        assert_eq!(statuses(&any_role), ["401", "429"]);
        let mut open = OperationBuilder::new().build();
        add_to(&mut open);
        assert!(statuses(&open).is_empty());
    }

    #[test]
    fn a_handler_own_description_is_kept() {
        let mut operation = OperationBuilder::new()
            .security(SecurityRequirement::new("bearer", ["tenant"]))
            .response("403", ResponseBuilder::new().description("mine").build())
            .build();
        add_to(&mut operation);
        let RefOr::T(response) = &operation.responses.responses["403"] else {
            panic!("expected an inline response");
        };
        assert_eq!(response.description, "mine");
    }
}
