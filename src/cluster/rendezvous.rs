//! Which live instance should own a key (a check, a duty): rendezvous
//! hashing. Every instance that sees the same members computes the same
//! owner, the keys spread evenly, and a member joining or leaving moves only
//! its own share. Wanting a key is not having it: the lease decides
//! (`super::Cluster`).

/// The member (by name) that should own `key`: the one whose score for it
/// is highest; `None` without members.
pub fn owner<'m>(key: &str, members: impl IntoIterator<Item = &'m str>) -> Option<&'m str> {
    members
        .into_iter()
        .max_by_key(|member| (score(member, key), *member))
}

/// A stable 64-bit score of (member, key): FNV-1a over both, the member and
/// key kept apart by a byte neither holds, then a finalizer (SplitMix64's) so
/// names that differ in one character score far apart. Stable across builds
/// and versions: instances of different versions must agree.
fn score(member: &str, key: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let bytes = member.bytes().chain([0xff]).chain(key.bytes());
    let mut h = bytes.fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME));
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Vec<String> {
        (0..3000).map(|i| format!("check-{i}")).collect()
    }

    fn owners(members: &[&str]) -> Vec<String> {
        keys()
            .iter()
            .map(|k| owner(k, members.iter().copied()).unwrap().to_string())
            .collect()
    }

    #[test]
    fn keys_spread_evenly() {
        let owned = owners(&["fra-1", "iad-1", "syd-1"]);
        for member in ["fra-1", "iad-1", "syd-1"] {
            let n = owned.iter().filter(|o| *o == member).count();
            // a third of 3000 is 1000; binomial spread is about ±26
            assert!((880..=1120).contains(&n), "{member} owns {n} of 3000");
        }
    }

    #[test]
    fn a_member_leaving_moves_only_its_own_keys_and_joining_takes_only_a_share() {
        let three = owners(&["a", "b", "c"]);
        let two = owners(&["a", "c"]);
        for (before, after) in three.iter().zip(&two) {
            if before != "b" {
                assert_eq!(before, after, "a key of {before} moved when b left");
            }
        }
        let four = owners(&["a", "b", "c", "d"]);
        let moved = three.iter().zip(&four).filter(|(b, a)| b != a).count();
        assert!(four.iter().zip(&three).all(|(a, b)| a == b || a == "d"));
        assert!((600..=900).contains(&moved), "{moved} of 3000 moved to d");
    }

    #[test]
    fn the_order_members_are_listed_in_does_not_matter() {
        for key in keys().iter().take(100) {
            assert_eq!(owner(key, ["x", "y", "z"]), owner(key, ["z", "x", "y"]));
        }
        assert_eq!(owner("web", []), None);
    }
}
