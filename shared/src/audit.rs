//! The audit trail: one structured INFO line for every change to the stored messages.
//!
//! The deployed API is private (IAM or JWT), so "who deleted everything?" has an answer, and
//! it must be written down where operators look: the function's log, JSON in the cloud. A line
//! is written only once a change has happened (a message stored, one removed, all removed);
//! reads and failed requests write none, which keeps the log's cost proportional to changes.
//!
//! Every field comes from API Gateway's request context, never from the headers or the body:
//! the caller is what the authorizer verified (the IAM principal's ARN, or the JWT's `sub` and
//! `iss`), the source IP is the one API Gateway saw, the request id is API Gateway's. The caller
//! is only ever logged: it names no file and is no part of a stored message.

use lambda_http::{
    aws_lambda_events::apigw::ApiGatewayV2httpRequestContext, request::RequestContext, Request,
    RequestExt,
};

use crate::{
    http::{request_id, Target},
    operation::Operation,
};

/// The `message` of every audit line, to search the log by.
pub const AUDIT_MESSAGE: &str = "audit";

/// Who made a request, as the API Gateway authorizer established it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller<'a> {
    /// Signed with SigV4 and allowed by IAM: the principal's ARN.
    Iam { arn: &'a str },
    /// Carried a JWT that the authorizer verified: its subject and issuer.
    Jwt {
        subject: &'a str,
        issuer: Option<&'a str>,
    },
    /// No authorizer ran: the API is public, or this is the local emulator.
    Anonymous,
    /// An authorizer ran but left no identity this code knows how to read (a Lambda
    /// authorizer, or a claim missing): not claimed to be anonymous.
    Unidentified,
}

impl<'a> Caller<'a> {
    /// Reads the caller from the request context's `authorizer`.
    pub fn of(request: &'a Request) -> Self {
        let Some(authorizer) = context(request).and_then(|c| c.authorizer.as_ref()) else {
            return Self::Anonymous;
        };
        if let Some(iam) = &authorizer.iam {
            return match iam.user_arn.as_deref() {
                Some(arn) => Self::Iam { arn },
                None => Self::Unidentified,
            };
        }
        if let Some(jwt) = &authorizer.jwt {
            return match jwt.claims.get("sub") {
                Some(subject) => Self::Jwt {
                    subject,
                    issuer: jwt.claims.get("iss").map(String::as_str),
                },
                None => Self::Unidentified,
            };
        }
        Self::Unidentified
    }

    /// How the caller was identified: `iam`, `jwt`, `anonymous` or `unidentified`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Iam { .. } => "iam",
            Self::Jwt { .. } => "jwt",
            Self::Anonymous => "anonymous",
            Self::Unidentified => "unidentified",
        }
    }

    /// The caller's identity: the ARN, the JWT subject, or the same word as [`Caller::kind`].
    pub fn identity(&self) -> &'a str {
        match *self {
            Self::Iam { arn } => arn,
            Self::Jwt { subject, .. } => subject,
            Self::Anonymous => "anonymous",
            Self::Unidentified => "unidentified",
        }
    }

    /// The JWT's issuer, which qualifies its subject.
    pub fn issuer(&self) -> Option<&'a str> {
        match *self {
            Self::Jwt { issuer, .. } => issuer,
            _ => None,
        }
    }
}

/// Writes the audit line for a change that has happened: `operation` on `target` (one message,
/// or "all" for the collection), by the request's caller, from its source IP, with API Gateway's
/// request id. Call it only after the change succeeded.
pub fn record(request: &Request, operation: Operation, target: Target) {
    let caller = Caller::of(request);
    let id = match target {
        Target::Collection => "all".to_owned(),
        Target::Message(id) => id.to_string(),
    };
    let source_ip = context(request).and_then(|c| c.http.source_ip.as_deref());
    lambda_http::tracing::info!(
        operation = operation.name(),
        id = id.as_str(),
        caller = caller.identity(),
        caller_type = caller.kind(),
        issuer = caller.issuer(),
        source_ip,
        request_id = request_id(request).as_str(),
        "{AUDIT_MESSAGE}"
    );
}

fn context(request: &Request) -> Option<&ApiGatewayV2httpRequestContext> {
    match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => Some(context),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_with(authorizer: serde_json::Value) -> Request {
        let event = serde_json::json!({
            "version": "2.0",
            "routeKey": "POST /messages",
            "rawPath": "/messages",
            "rawQueryString": "",
            "headers": {},
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "api",
                "authorizer": authorizer,
                "http": { "method": "POST", "path": "/messages", "protocol": "HTTP/1.1",
                          "sourceIp": "192.0.2.1", "userAgent": "test" },
                "requestId": "id",
                "routeKey": "POST /messages",
                "stage": "$default",
                "time": "26/Nov/2026:18:37:30 +0000",
                "timeEpoch": 0
            },
            "isBase64Encoded": false
        });
        lambda_http::request::from_str(&event.to_string()).unwrap()
    }

    #[test]
    fn an_authorizer_without_a_known_identity_is_not_called_anonymous() {
        for authorizer in [
            serde_json::json!({ "iam": { "accountId": "123456789012" } }),
            serde_json::json!({ "jwt": { "claims": { "iss": "https://issuer" }, "scopes": null } }),
            serde_json::json!({ "lambda": { "user": "someone" } }),
        ] {
            let request = request_with(authorizer.clone());
            let caller = Caller::of(&request);
            assert_eq!(caller, Caller::Unidentified, "{authorizer}");
            assert_eq!(caller.identity(), "unidentified");
        }
    }

    #[test]
    fn a_jwt_without_an_issuer_still_names_its_subject() {
        let request = request_with(serde_json::json!({ "jwt": { "claims": { "sub": "s-1" } } }));
        let caller = Caller::of(&request);
        assert_eq!(
            caller,
            Caller::Jwt {
                subject: "s-1",
                issuer: None
            }
        );
        assert_eq!((caller.kind(), caller.issuer()), ("jwt", None));
    }
}
