//! The event stream of `GET /v1/me/events` (server-sent events): each message's `data` is
//! one audit event as JSON; comments (keep-alives) and other fields are skipped. A server
//! that shuts down sends a last message of type `shutdown`: the stream ends there, cleanly,
//! and the caller reconnects with the last `seq` it saw.

use std::collections::VecDeque;

use futures_util::{StreamExt, stream};

use crate::{Error, Event, Result, RowStream};

/// Splits bytes into lines and lines into messages.
#[derive(Default)]
struct Parser {
    /// Bytes not yet ended by a newline.
    partial: Vec<u8>,
    /// The `data` lines of the message being read.
    data: Vec<String>,
    /// The `event` field of the message being read.
    kind: Option<String>,
    ready: VecDeque<Event>,
    /// The server said it is shutting down: nothing follows.
    shut_down: bool,
}

impl Parser {
    /// Takes one complete line.
    fn line(&mut self, line: &str) -> Result<()> {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            if self.kind.take().as_deref() == Some("shutdown") {
                self.data.clear();
                self.shut_down = true;
            } else if !self.data.is_empty() {
                let text = self.data.join("\n");
                self.data.clear();
                let event = serde_json::from_str(&text).map_err(|e| Error::Unexpected {
                    status: 200,
                    detail: format!("event data: {e}"),
                })?;
                self.ready.push_back(event);
            }
        } else if let Some(value) = line.strip_prefix("event:") {
            self.kind = Some(value.trim().to_owned());
        } else if let Some(value) = line.strip_prefix("data:") {
            self.data
                .push(value.strip_prefix(' ').unwrap_or(value).to_owned());
        }
        Ok(())
    }

    /// Takes a chunk of the body.
    fn feed(&mut self, bytes: &[u8]) -> Result<()> {
        self.partial.extend_from_slice(bytes);
        while let Some(end) = self.partial.iter().position(|b| *b == b'\n') {
            let rest = self.partial.split_off(end + 1);
            let line = std::mem::replace(&mut self.partial, rest);
            let text = String::from_utf8_lossy(&line);
            let text = text.strip_suffix('\n').unwrap_or(&text).to_owned();
            self.line(&text)?;
        }
        Ok(())
    }

    /// The body ended: what is left ends the last message.
    fn finish(&mut self) -> Result<()> {
        let rest = std::mem::take(&mut self.partial);
        self.line(&String::from_utf8_lossy(&rest))?;
        self.line("")
    }
}

/// The events of an answered `GET /v1/me/events`.
pub(crate) fn events(res: reqwest::Response) -> RowStream<Event> {
    let start = (res, Parser::default(), false);
    stream::try_unfold(start, |(mut res, mut parser, mut ended)| async move {
        loop {
            if let Some(event) = parser.ready.pop_front() {
                return Ok(Some((event, (res, parser, ended))));
            }
            if ended || parser.shut_down {
                return Ok(None);
            }
            match res.chunk().await? {
                Some(bytes) => parser.feed(&bytes)?,
                None => {
                    ended = true;
                    parser.finish()?;
                }
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]

    use super::*;

    const EVENT: &str = r#"{"seq":7,"at":"2026-01-01T12:00:00Z","actor":"alice","owner_id":"alice","action":"token.issued","target":"token:tok_00000000000000000000","details":{},"hash":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","prev_hash":"0000000000000000000000000000000000000000000000000000000000000000"}"#;

    #[test]
    fn messages_split_across_chunks_and_keep_alives_are_read() {
        let mut p = Parser::default();
        let body = format!(": keep-alive\n\nid: 7\nevent: token.issued\ndata: {EVENT}\r\n\r\n");
        let (a, b) = body.as_bytes().split_at(40);
        p.feed(a).unwrap();
        assert!(p.ready.is_empty());
        p.feed(b).unwrap();
        assert_eq!(p.ready.len(), 1);
        assert_eq!(p.ready[0].seq, 7);
        assert_eq!(p.ready[0].action, "token.issued");
    }

    #[test]
    fn a_message_cut_by_the_end_of_the_body_is_still_read() {
        let mut p = Parser::default();
        p.feed(format!("data: {EVENT}").as_bytes()).unwrap();
        assert!(p.ready.is_empty());
        p.finish().unwrap();
        assert_eq!(p.ready.len(), 1);
    }

    #[test]
    fn a_shutdown_message_ends_the_stream_after_the_events_before_it() {
        let mut p = Parser::default();
        let body = format!(
            "id: 7\nevent: token.issued\ndata: {EVENT}\n\nevent: shutdown\nretry: 1000\ndata: {{\"reason\":\"server_shutdown\"}}\n\n"
        );
        p.feed(body.as_bytes()).unwrap();
        assert_eq!(p.ready.len(), 1);
        assert!(p.shut_down);
    }

    #[test]
    fn data_that_is_no_event_is_an_unexpected_answer() {
        let mut p = Parser::default();
        let e = p.feed(b"data: {\"seq\": \"x\"}\n\n").unwrap_err();
        assert!(matches!(e, Error::Unexpected { status: 200, .. }), "{e}");
    }
}
