//! The throwaway PostgreSQL server works: it starts (as root too), hands out distinct
//! databases, and answers `psql`.

use std::process::Command;

use ownership_tests::pg::PgCluster;

#[test]
fn the_shared_cluster_is_started_once_per_process() {
    let first = PgCluster::shared().unwrap();
    let second = PgCluster::shared().unwrap();
    assert!(std::ptr::eq(first, second));
}

#[test]
fn each_fresh_database_is_a_different_empty_database_that_answers_psql() {
    let cluster = PgCluster::shared().unwrap();
    let first = cluster.fresh_database_url().unwrap();
    let second = cluster.fresh_database_url().unwrap();
    assert_ne!(first, second);
    assert!(first.starts_with("postgres"), "{first}");

    let output = Command::new(cluster.bindir().join("psql"))
        .args(["-X", "-A", "-t", "-d", &first, "-c", "select 1"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "1");

    let database = first.rsplit('/').next().unwrap().split('?').next().unwrap();
    assert_eq!(
        cluster.psql(&first, "select current_database()").unwrap(),
        database
    );
    assert_eq!(
        cluster
            .psql(
                &second,
                "select count(*) from pg_tables where schemaname = 'public'"
            )
            .unwrap(),
        "0"
    );
}

#[test]
fn a_table_made_in_one_fresh_database_is_absent_from_another() {
    let cluster = PgCluster::shared().unwrap();
    let first = cluster.fresh_database_url().unwrap();
    let second = cluster.fresh_database_url().unwrap();
    cluster
        .psql(&first, "create table marker (id int)")
        .unwrap();
    assert_eq!(
        cluster
            .psql(&first, "select to_regclass('marker') is not null")
            .unwrap(),
        "t"
    );
    assert_eq!(
        cluster
            .psql(&second, "select to_regclass('marker') is not null")
            .unwrap(),
        "f"
    );
}
