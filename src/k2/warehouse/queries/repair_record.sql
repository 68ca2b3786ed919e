-- k2 repair: a damaged part was dealt with (k2.warehouse.repair); it is not reported again.
INSERT INTO k2.repairs (table_name, part_name, reason, action)
VALUES ({table:String}, {part:String}, {reason:String}, {action:String})
