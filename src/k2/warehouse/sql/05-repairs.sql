-- Repairs: the damaged parts K2 found (ClickHouse moved them to detached/ as broken when the data
-- dir opened) and what it did about them (k2.warehouse.repair). A detached part listed here is
-- not reported again; its files stay in detached/ until a person deletes them.
CREATE TABLE IF NOT EXISTS k2.repairs
(
    table_name  String,
    part_name   String,
    reason      String,
    action      String,
    repaired_at DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = MergeTree
ORDER BY (table_name, part_name);
