//! keeper's exit statuses, every verb's, in one place (documented in
//! docs/cli.md, "Exit codes"). The numbers are a monitoring plugin's
//! (Nagios, Icinga, Sensu): `status` and `probe` can be run by one as they
//! are. Every other verb exits [`Exit::Ok`] or [`Exit::Failed`].

use std::process::ExitCode;

use crate::core::Color;

/// How a verb ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// 0: done; for `status` and `probe`, everything green.
    Ok,
    /// 1: the verb failed (an invalid config, keeper unreachable or
    /// refusing, a file not written, a Fly app the cost report could not
    /// read); `status` and `check-config` print why on stderr.
    Failed,
    /// 1: `status` or `probe`: the worst is yellow.
    Yellow,
    /// 2: `status` or `probe`: something is red.
    Red,
    /// 3: `status`: keeper could not say (unreachable, an error, a check
    /// not run yet).
    Unknown,
    /// 3: the command line was not understood (an unknown verb or option, a
    /// bad value): unknown, as monitoring plugins answer a bad invocation,
    /// never taken for red.
    Usage,
}

impl Exit {
    /// The process exit status.
    pub const fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Failed | Exit::Yellow => 1,
            Exit::Red => 2,
            Exit::Unknown | Exit::Usage => 3,
        }
    }

    /// A verdict's color as `status` and `probe` exit with it.
    pub const fn of(color: Color) -> Exit {
        match color {
            Color::Green => Exit::Ok,
            Color::Yellow => Exit::Yellow,
            Color::Red => Exit::Red,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_a_monitoring_plugins() {
        let codes: Vec<u8> = [
            Exit::Ok,
            Exit::Failed,
            Exit::Yellow,
            Exit::Red,
            Exit::Unknown,
            Exit::Usage,
        ]
        .iter()
        .map(|e| e.code())
        .collect();
        assert_eq!(codes, [0, 1, 1, 2, 3, 3]);
        assert_eq!(Exit::of(Color::Red), Exit::Red);
        assert_eq!(Exit::of(Color::Yellow), Exit::Yellow);
        assert_eq!(Exit::of(Color::Green), Exit::Ok);
    }
}
