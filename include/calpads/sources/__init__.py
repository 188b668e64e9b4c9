"""Where SIS data comes from: the SQL source today, vendor APIs later."""
