package failover

// ClaimedByName is exported for the external tests.
var ClaimedByName = claimedByName
