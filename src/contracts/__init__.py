"""The hand-off contracts: what one phase leaves for the next, owned by neither.

Each phase imports these and never another phase. `layout` says where every
file lives, `landing` what an extract leaves (the manifest), `staging` what a
transform leaves, `schema` the staging columns and their types, `ledger` the
pipeline's own tables, `results` what every phase reports to the runner.
"""
