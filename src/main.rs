fn main() -> anyhow::Result<()> {
    print!("{}", clodo_operator::crd::all_crds_yaml()?);
    Ok(())
}
