# Channels, notifications and their delivery log arrive with the alerting issue.
