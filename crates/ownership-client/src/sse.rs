//! The event stream of `GET /v1/me/events` (server-sent events): each message's `data` is
//! one audit event as JSON; comments (keep-alives) and other fields are skipped.

use std::collections::VecDeque;

use futures_util::{StreamExt, stream};

use crate::{Error, Event, Result, RowStream};

struct Reader {
    res: reqwest::Response,
    /// Bytes not yet ended by a newline.
    partial: Vec<u8>,
    /// The `data` lines of the message being read.
    data: Vec<String>,
    ready: VecDeque<Event>,
    ended: bool,
}

impl Reader {
    /// Takes one complete line.
    fn line(&mut self, line: &str) -> Result<()> {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            if !self.data.is_empty() {
                let text = self.data.join("\n");
                self.data.clear();
                let event = serde_json::from_str(&text).map_err(|e| Error::Unexpected {
                    status: 200,
                    detail: format!("event data: {e}"),
                })?;
                self.ready.push_back(event);
            }
        } else if let Some(value) = line.strip_prefix("data:") {
            self.data
                .push(value.strip_prefix(' ').unwrap_or(value).to_owned());
        }
        Ok(())
    }

    /// Splits the complete lines off the buffered bytes.
    fn take_lines(&mut self) -> Result<()> {
        while let Some(end) = self.partial.iter().position(|b| *b == b'\n') {
            let rest = self.partial.split_off(end + 1);
            let line = std::mem::replace(&mut self.partial, rest);
            let text = String::from_utf8_lossy(&line);
            let text = text.strip_suffix('\n').unwrap_or(&text).to_owned();
            self.line(&text)?;
        }
        Ok(())
    }
}

/// The events of an answered `GET /v1/me/events`.
pub(crate) fn events(res: reqwest::Response) -> RowStream<Event> {
    let reader = Reader {
        res,
        partial: Vec::new(),
        data: Vec::new(),
        ready: VecDeque::new(),
        ended: false,
    };
    stream::try_unfold(reader, |mut r| async move {
        loop {
            if let Some(event) = r.ready.pop_front() {
                return Ok(Some((event, r)));
            }
            if r.ended {
                return Ok(None);
            }
            match r.res.chunk().await? {
                Some(bytes) => {
                    r.partial.extend_from_slice(&bytes);
                    r.take_lines()?;
                }
                None => {
                    r.ended = true;
                    let rest = std::mem::take(&mut r.partial);
                    r.line(&String::from_utf8_lossy(&rest))?;
                    r.line("")?;
                }
            }
        }
    })
    .boxed()
}
