//! The name of a target's staging table, and whether a table (or index) of a schema exists.

use postgres::GenericClient;

use crate::db::MAX_IDENTIFIER;

/// Whether `schema` holds a relation (table, index, view…) named `name`.
pub(super) fn relation_exists(
    client: &mut impl GenericClient,
    schema: &str,
    name: &str,
) -> Result<bool, postgres::Error> {
    Ok(client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON \
             n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2)",
            &[&schema, &name],
        )?
        .get(0))
}

/// The staging table of a target: fixed per target (one run at a time holds its advisory lock),
/// short enough for any target name.
pub fn staging_name(qualified: &str) -> String {
    // FNV-1a: stable across versions and machines, which the cleanup of a killed run relies on.
    let hash = qualified.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("custagg_staging_{hash:016x}")
}

pub(super) fn truncate_identifier(name: &str) -> String {
    // Names here are ASCII (validated), so any byte index is a char boundary.
    name[..name.len().min(MAX_IDENTIFIER)].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_names_are_stable_and_short() {
        let a = staging_name(&format!("public.{}", "y".repeat(63)));
        assert_eq!(a, staging_name(&format!("public.{}", "y".repeat(63))));
        assert!(a.len() + "_pkey".len() <= MAX_IDENTIFIER);
        assert_ne!(staging_name("public.a"), staging_name("public.b"));
    }
}
