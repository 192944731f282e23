//! The swap: one transaction that puts the staging table in place of the target (contract
//! §5). A rename when nothing depends on the target, with the old table's privileges and owner
//! given to the new one; `TRUNCATE` + `INSERT … SELECT` into the old table when views or other
//! objects depend on it, so they keep working. Readers see the old rows or the new ones.

use postgres::Transaction;

use super::table::{relation_exists, truncate_identifier};
use super::{Loader, locked_or_failed};
use crate::db::connect::quote_ident;
use crate::error::{Error, Result};

/// The names one swap works with, and how its errors are told.
struct Swap {
    /// The target and the staging table, schema-qualified and quoted.
    target: String,
    staging: String,
    /// Unquoted: the schema, the target table, the staging table.
    schema: String,
    table: String,
    stage: String,
    /// The target as the user named it, for messages.
    shown: String,
    lock_ms: u128,
}

impl Swap {
    fn fail(&self, what: &str, e: postgres::Error) -> Error {
        locked_or_failed(&self.shown, self.lock_ms, what, e, "the table is unchanged")
    }

    /// No target yet: the staging table takes its name.
    fn rename_into_place(&self, tx: &mut Transaction<'_>) -> Result<()> {
        tx.batch_execute(&format!(
            "ALTER TABLE {} RENAME TO {}",
            self.staging,
            quote_ident(&self.table)
        ))
        .map_err(|e| self.fail("cannot rename the new table into place", e))
    }

    /// Views depend on the target (`oid`): a rename would leave them pointing at the old table,
    /// so the old table is refilled instead.
    fn refill_in_place(&self, tx: &mut Transaction<'_>) -> Result<()> {
        let (target, staging) = (&self.target, &self.staging);
        tx.batch_execute(&format!(
            "TRUNCATE {target}; \
             INSERT INTO {target} (customer_id, favourite_product, longest_streak) \
             SELECT customer_id, favourite_product, longest_streak FROM {staging}; \
             DROP TABLE {staging}"
        ))
        .map_err(|e| self.fail("cannot refill the table in place", e))
    }

    /// Drops the old table (`oid`) and renames the new one into place, granting the old
    /// privileges again and giving it the old owner. Every name comes from the catalog through
    /// `quote_ident`: no user text in SQL.
    fn replace_keeping_privileges(&self, tx: &mut Transaction<'_>, oid: u32) -> Result<()> {
        let target = &self.target;
        let grants: Vec<String> = tx
            .query(
                "SELECT 'GRANT ' || a.privilege_type || ' ON ' || $2 || ' TO ' || \
                        CASE WHEN a.grantee = 0 THEN 'PUBLIC' \
                             ELSE quote_ident(pg_get_userbyid(a.grantee)) END || \
                        CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END \
                 FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid = $1",
                &[&oid, target],
            )
            .map_err(|e| self.fail("cannot read the table's privileges", e))?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let owner: Option<String> = tx
            .query_one(
                "SELECT CASE WHEN relowner <> (SELECT oid FROM pg_roles WHERE rolname = current_user) \
                        THEN quote_ident(pg_get_userbyid(relowner)) END \
                 FROM pg_class WHERE oid = $1",
                &[&oid],
            )
            .map_err(|e| self.fail("cannot read the table's owner", e))?
            .get(0);
        tx.batch_execute(&format!(
            "DROP TABLE {target}; ALTER TABLE {} RENAME TO {}",
            self.staging,
            quote_ident(&self.table)
        ))
        .map_err(|e| self.fail("cannot replace the table", e))?;
        for grant in &grants {
            tx.batch_execute(grant)
                .map_err(|e| self.fail("cannot grant the old privileges again", e))?;
        }
        if let Some(owner) = owner {
            tx.batch_execute(&format!("ALTER TABLE {target} OWNER TO {owner}"))
                .map_err(|e| self.fail("cannot give the table back to its owner", e))?;
        }
        Ok(())
    }

    /// Names the new primary key after the table, unless that name is taken.
    fn rename_primary_key(&self, tx: &mut Transaction<'_>) -> Result<()> {
        let wanted = truncate_identifier(&format!("{}_pkey", self.table));
        let taken = relation_exists(tx, &self.schema, &wanted)
            .map_err(|e| self.fail("cannot look up index names", e))?;
        if taken {
            return Ok(());
        }
        let current = truncate_identifier(&format!("{}_pkey", self.stage));
        tx.batch_execute(&format!(
            "ALTER INDEX {}.{} RENAME TO {}",
            quote_ident(&self.schema),
            quote_ident(&current),
            quote_ident(&wanted)
        ))
        .map_err(|e| self.fail("cannot rename the primary key", e))
    }
}

impl Loader {
    /// The swap transaction. Returns whether the target was refilled in place (views depend on it).
    pub(super) fn swap(&mut self) -> Result<bool> {
        let swap = Swap {
            target: self.ident(&self.table),
            staging: self.staging_ident(),
            schema: self.schema.clone(),
            table: self.table.clone(),
            stage: self.staging.clone(),
            shown: self.target(),
            lock_ms: self.lock_timeout.as_millis().max(1),
        };
        let mut tx = self
            .client
            .transaction()
            .map_err(|e| swap.fail("cannot begin the swap", e))?;
        tx.batch_execute(&format!("SET LOCAL lock_timeout = {}", swap.lock_ms))
            .map_err(|e| swap.fail("cannot set lock_timeout", e))?;
        let existing: Option<u32> = tx
            .query_opt(
                "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relname = $2",
                &[&swap.schema, &swap.table],
            )
            .map_err(|e| swap.fail("cannot look up the table", e))?
            .map(|row| row.get(0));
        let refilled = match existing {
            None => {
                swap.rename_into_place(&mut tx)?;
                false
            }
            Some(oid) => {
                tx.batch_execute(&format!(
                    "LOCK TABLE {} IN ACCESS EXCLUSIVE MODE",
                    swap.target
                ))
                .map_err(|e| swap.fail("cannot lock the table", e))?;
                let dependents: bool = tx
                    .query_one(
                        "SELECT EXISTS (SELECT 1 FROM pg_depend WHERE refclassid = 'pg_class'::regclass \
                         AND refobjid = $1 AND deptype = 'n')",
                        &[&oid],
                    )
                    .map_err(|e| swap.fail("cannot look up dependent objects", e))?
                    .get(0);
                if dependents {
                    swap.refill_in_place(&mut tx)?;
                } else {
                    swap.replace_keeping_privileges(&mut tx, oid)?;
                }
                dependents
            }
        };
        if !refilled {
            swap.rename_primary_key(&mut tx)?;
        }
        tx.commit()
            .map_err(|e| swap.fail("cannot commit the swap", e))?;
        self.staging_exists = false;
        Ok(refilled)
    }
}
