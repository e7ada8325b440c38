"""What people read: web map, static map, bulletin, workbooks."""
