//! What a request does, named once: the audit log and the metrics both say it, and operators
//! search and alarm on exactly these names.

use lambda_http::{Request, RequestExt};

/// One kind of work a function does. [`Operation::name`] is the `operation` of an audit line and
/// the `Operation` dimension of the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `GET /messages`: a page of messages.
    List,
    /// `GET /messages/{id}`: one message's bytes.
    Read,
    /// `POST /messages`: store a new message.
    Publish,
    /// `DELETE /messages/{id}`: remove one message.
    Delete,
    /// `DELETE /messages`: remove every message.
    DeleteAll,
    /// Reclaiming space in the background (leftover temporaries, deleted messages).
    Reclaim,
    /// Serving the message wall, the HTML page of `GET /`.
    Page,
}

impl Operation {
    /// The stable name: `list`, `read`, `publish`, `delete`, `deleteAll`, `reclaim`, `page`.
    pub fn name(self) -> &'static str {
        match self {
            Self::List => "list",
            Self::Read => "read",
            Self::Publish => "publish",
            Self::Delete => "delete",
            Self::DeleteAll => "deleteAll",
            Self::Reclaim => "reclaim",
            Self::Page => "page",
        }
    }

    /// `one` for a request on a route with an `{id}` (valid or not), else `collection`: a
    /// function knows its operation from its route before it has validated anything, so that a
    /// request that fails is counted against the operation it attempted.
    pub fn of_route(request: &Request, collection: Self, one: Self) -> Self {
        let has_id = request
            .path_parameters_ref()
            .is_some_and(|p| p.first("id").is_some());
        if has_id {
            one
        } else {
            collection
        }
    }
}
