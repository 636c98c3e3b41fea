module github.com/reclaimgc/reclaim

go 1.26
