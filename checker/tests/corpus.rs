//! Every history of the shared corpus gives its documented verdict (EXPECTED.md beside each
//! corpus folder), one test per file with the verdict in the test's name.
//!
//! Porcupine's Jepsen etcd logs: cas-register from absent (`etcd_095.log` is empty, so
//! trivially linearizable; Porcupine has no test for it). Porcupine's kv logs: kv with every
//! key initially "" (Porcupine's `kvModel`). Knossos' cas-register histories:
//! `(cas-register 0)`, with Knossos' reading of a nil read (any value); the multi-register
//! history with `(multi-register {:x 0 :y 0})`; `knossos/mutex/bad/etcd.edn` with the `mutex`
//! model (Knossos' directory says bad; EXPECTED.md's verdict column says false).

use checker::{check, ModelKind, Options, Verdict};
use histories::{read_path, Format};
use serde_json::{json, Value};
use std::path::PathBuf;

fn corpus(rel: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus")).join(rel)
}

fn verdict(
    rel: &str,
    format: Format,
    model: ModelKind,
    initial: Value,
    nil_unknown: bool,
) -> Verdict {
    let mut h = read_path(&corpus(rel), format).unwrap_or_else(|e| panic!("{rel}: {e}"));
    if nil_unknown {
        checker::nil_reads_as_unknown(&mut h);
    }
    let opts = Options {
        model,
        initial,
        ..Options::default()
    };
    let report = check(&h, &opts);
    assert!(report.error.is_none(), "{rel}: {:?}", report.error);
    if report.verdict == Verdict::NotLinearizable {
        let k = report.failures().next().expect("a failing key");
        let c = k.counterexample.as_ref().expect("a counterexample");
        assert!(
            !c.linearizations.is_empty(),
            "{rel}: no partial linearization"
        );
        assert!(c.explain().contains("cannot be linearized"));
    }
    report.verdict
}

fn etcd(n: &str) -> Verdict {
    verdict(
        &format!("porcupine/jepsen/etcd_{n}.log"),
        Format::JepsenLog,
        ModelKind::CasRegister,
        Value::Null,
        false,
    )
}

fn kv(name: &str) -> Verdict {
    verdict(
        &format!("porcupine/kv/{name}.txt"),
        Format::PorcupineKv,
        ModelKind::Kv,
        json!(""),
        false,
    )
}

fn knossos(rel: &str) -> Verdict {
    verdict(
        &format!("knossos/{rel}.edn"),
        Format::Edn,
        ModelKind::CasRegister,
        json!(0),
        true,
    )
}

macro_rules! corpus {
    ($($name:ident: $f:ident($file:expr) => $verdict:ident;)*) => {$(
        #[test]
        fn $name() {
            assert_eq!($f($file), Verdict::$verdict);
        }
    )*};
}

corpus! {
    etcd_000_not_linearizable: etcd("000") => NotLinearizable;
    etcd_001_not_linearizable: etcd("001") => NotLinearizable;
    etcd_002_linearizable: etcd("002") => Linearizable;
    etcd_003_not_linearizable: etcd("003") => NotLinearizable;
    etcd_004_not_linearizable: etcd("004") => NotLinearizable;
    etcd_005_linearizable: etcd("005") => Linearizable;
    etcd_006_not_linearizable: etcd("006") => NotLinearizable;
    etcd_007_linearizable: etcd("007") => Linearizable;
    etcd_008_not_linearizable: etcd("008") => NotLinearizable;
    etcd_009_not_linearizable: etcd("009") => NotLinearizable;
    etcd_010_not_linearizable: etcd("010") => NotLinearizable;
    etcd_011_not_linearizable: etcd("011") => NotLinearizable;
    etcd_012_not_linearizable: etcd("012") => NotLinearizable;
    etcd_013_not_linearizable: etcd("013") => NotLinearizable;
    etcd_014_not_linearizable: etcd("014") => NotLinearizable;
    etcd_015_not_linearizable: etcd("015") => NotLinearizable;
    etcd_016_not_linearizable: etcd("016") => NotLinearizable;
    etcd_017_not_linearizable: etcd("017") => NotLinearizable;
    etcd_018_linearizable: etcd("018") => Linearizable;
    etcd_019_not_linearizable: etcd("019") => NotLinearizable;
    etcd_020_not_linearizable: etcd("020") => NotLinearizable;
    etcd_021_not_linearizable: etcd("021") => NotLinearizable;
    etcd_022_not_linearizable: etcd("022") => NotLinearizable;
    etcd_023_not_linearizable: etcd("023") => NotLinearizable;
    etcd_024_not_linearizable: etcd("024") => NotLinearizable;
    etcd_025_linearizable: etcd("025") => Linearizable;
    etcd_026_not_linearizable: etcd("026") => NotLinearizable;
    etcd_027_not_linearizable: etcd("027") => NotLinearizable;
    etcd_028_not_linearizable: etcd("028") => NotLinearizable;
    etcd_029_not_linearizable: etcd("029") => NotLinearizable;
    etcd_030_not_linearizable: etcd("030") => NotLinearizable;
    etcd_031_linearizable: etcd("031") => Linearizable;
    etcd_032_not_linearizable: etcd("032") => NotLinearizable;
    etcd_033_not_linearizable: etcd("033") => NotLinearizable;
    etcd_034_not_linearizable: etcd("034") => NotLinearizable;
    etcd_035_not_linearizable: etcd("035") => NotLinearizable;
    etcd_036_not_linearizable: etcd("036") => NotLinearizable;
    etcd_037_not_linearizable: etcd("037") => NotLinearizable;
    etcd_038_linearizable: etcd("038") => Linearizable;
    etcd_039_not_linearizable: etcd("039") => NotLinearizable;
    etcd_040_not_linearizable: etcd("040") => NotLinearizable;
    etcd_041_not_linearizable: etcd("041") => NotLinearizable;
    etcd_042_not_linearizable: etcd("042") => NotLinearizable;
    etcd_043_not_linearizable: etcd("043") => NotLinearizable;
    etcd_044_not_linearizable: etcd("044") => NotLinearizable;
    etcd_045_linearizable: etcd("045") => Linearizable;
    etcd_046_not_linearizable: etcd("046") => NotLinearizable;
    etcd_047_not_linearizable: etcd("047") => NotLinearizable;
    etcd_048_linearizable: etcd("048") => Linearizable;
    etcd_049_linearizable: etcd("049") => Linearizable;
    etcd_050_not_linearizable: etcd("050") => NotLinearizable;
    etcd_051_linearizable: etcd("051") => Linearizable;
    etcd_052_not_linearizable: etcd("052") => NotLinearizable;
    etcd_053_linearizable: etcd("053") => Linearizable;
    etcd_054_not_linearizable: etcd("054") => NotLinearizable;
    etcd_055_not_linearizable: etcd("055") => NotLinearizable;
    etcd_056_linearizable: etcd("056") => Linearizable;
    etcd_057_not_linearizable: etcd("057") => NotLinearizable;
    etcd_058_not_linearizable: etcd("058") => NotLinearizable;
    etcd_059_not_linearizable: etcd("059") => NotLinearizable;
    etcd_060_not_linearizable: etcd("060") => NotLinearizable;
    etcd_061_not_linearizable: etcd("061") => NotLinearizable;
    etcd_062_not_linearizable: etcd("062") => NotLinearizable;
    etcd_063_not_linearizable: etcd("063") => NotLinearizable;
    etcd_064_not_linearizable: etcd("064") => NotLinearizable;
    etcd_065_not_linearizable: etcd("065") => NotLinearizable;
    etcd_066_not_linearizable: etcd("066") => NotLinearizable;
    etcd_067_linearizable: etcd("067") => Linearizable;
    etcd_068_not_linearizable: etcd("068") => NotLinearizable;
    etcd_069_not_linearizable: etcd("069") => NotLinearizable;
    etcd_070_not_linearizable: etcd("070") => NotLinearizable;
    etcd_071_not_linearizable: etcd("071") => NotLinearizable;
    etcd_072_not_linearizable: etcd("072") => NotLinearizable;
    etcd_073_not_linearizable: etcd("073") => NotLinearizable;
    etcd_074_not_linearizable: etcd("074") => NotLinearizable;
    etcd_075_linearizable: etcd("075") => Linearizable;
    etcd_076_linearizable: etcd("076") => Linearizable;
    etcd_077_not_linearizable: etcd("077") => NotLinearizable;
    etcd_078_not_linearizable: etcd("078") => NotLinearizable;
    etcd_079_not_linearizable: etcd("079") => NotLinearizable;
    etcd_080_linearizable: etcd("080") => Linearizable;
    etcd_081_not_linearizable: etcd("081") => NotLinearizable;
    etcd_082_not_linearizable: etcd("082") => NotLinearizable;
    etcd_083_not_linearizable: etcd("083") => NotLinearizable;
    etcd_084_not_linearizable: etcd("084") => NotLinearizable;
    etcd_085_not_linearizable: etcd("085") => NotLinearizable;
    etcd_086_not_linearizable: etcd("086") => NotLinearizable;
    etcd_087_linearizable: etcd("087") => Linearizable;
    etcd_088_not_linearizable: etcd("088") => NotLinearizable;
    etcd_089_not_linearizable: etcd("089") => NotLinearizable;
    etcd_090_not_linearizable: etcd("090") => NotLinearizable;
    etcd_091_not_linearizable: etcd("091") => NotLinearizable;
    etcd_092_linearizable: etcd("092") => Linearizable;
    etcd_093_not_linearizable: etcd("093") => NotLinearizable;
    etcd_094_not_linearizable: etcd("094") => NotLinearizable;
    etcd_095_linearizable: etcd("095") => Linearizable;
    etcd_096_not_linearizable: etcd("096") => NotLinearizable;
    etcd_097_not_linearizable: etcd("097") => NotLinearizable;
    etcd_098_linearizable: etcd("098") => Linearizable;
    etcd_099_not_linearizable: etcd("099") => NotLinearizable;
    etcd_100_linearizable: etcd("100") => Linearizable;
    etcd_101_linearizable: etcd("101") => Linearizable;
    etcd_102_linearizable: etcd("102") => Linearizable;
    kv_c01_ok_linearizable: kv("c01-ok") => Linearizable;
    kv_c01_bad_not_linearizable: kv("c01-bad") => NotLinearizable;
    kv_c10_ok_linearizable: kv("c10-ok") => Linearizable;
    kv_c10_bad_not_linearizable: kv("c10-bad") => NotLinearizable;
    kv_c50_ok_linearizable: kv("c50-ok") => Linearizable;
    kv_c50_bad_not_linearizable: kv("c50-bad") => NotLinearizable;
    knossos_cas_register_bug_linearizable: knossos("cas-register/good/cas-register-bug") => Linearizable;
    knossos_memstress3_0_linearizable: knossos("cas-register/good/memstress3-0") => Linearizable;
    knossos_memstress3_1_linearizable: knossos("cas-register/good/memstress3-1") => Linearizable;
    knossos_memstress3_10_linearizable: knossos("cas-register/good/memstress3-10") => Linearizable;
    knossos_memstress3_11_linearizable: knossos("cas-register/good/memstress3-11") => Linearizable;
    knossos_memstress3_12_linearizable: knossos("cas-register/good/memstress3-12") => Linearizable;
    knossos_memstress3_13_linearizable: knossos("cas-register/good/memstress3-13") => Linearizable;
    knossos_memstress3_14_linearizable: knossos("cas-register/good/memstress3-14") => Linearizable;
    knossos_memstress3_15_linearizable: knossos("cas-register/good/memstress3-15") => Linearizable;
    knossos_memstress3_16_linearizable: knossos("cas-register/good/memstress3-16") => Linearizable;
    knossos_memstress3_17_linearizable: knossos("cas-register/good/memstress3-17") => Linearizable;
    knossos_memstress3_18_linearizable: knossos("cas-register/good/memstress3-18") => Linearizable;
    knossos_memstress3_19_linearizable: knossos("cas-register/good/memstress3-19") => Linearizable;
    knossos_memstress3_2_linearizable: knossos("cas-register/good/memstress3-2") => Linearizable;
    knossos_memstress3_20_linearizable: knossos("cas-register/good/memstress3-20") => Linearizable;
    knossos_memstress3_21_linearizable: knossos("cas-register/good/memstress3-21") => Linearizable;
    knossos_memstress3_22_linearizable: knossos("cas-register/good/memstress3-22") => Linearizable;
    knossos_memstress3_23_linearizable: knossos("cas-register/good/memstress3-23") => Linearizable;
    knossos_memstress3_24_linearizable: knossos("cas-register/good/memstress3-24") => Linearizable;
    knossos_memstress3_25_linearizable: knossos("cas-register/good/memstress3-25") => Linearizable;
    knossos_memstress3_26_linearizable: knossos("cas-register/good/memstress3-26") => Linearizable;
    knossos_memstress3_27_linearizable: knossos("cas-register/good/memstress3-27") => Linearizable;
    knossos_memstress3_28_linearizable: knossos("cas-register/good/memstress3-28") => Linearizable;
    knossos_memstress3_29_linearizable: knossos("cas-register/good/memstress3-29") => Linearizable;
    knossos_memstress3_3_linearizable: knossos("cas-register/good/memstress3-3") => Linearizable;
    knossos_memstress3_30_linearizable: knossos("cas-register/good/memstress3-30") => Linearizable;
    knossos_memstress3_31_linearizable: knossos("cas-register/good/memstress3-31") => Linearizable;
    knossos_memstress3_32_linearizable: knossos("cas-register/good/memstress3-32") => Linearizable;
    knossos_memstress3_33_linearizable: knossos("cas-register/good/memstress3-33") => Linearizable;
    knossos_memstress3_34_linearizable: knossos("cas-register/good/memstress3-34") => Linearizable;
    knossos_memstress3_35_linearizable: knossos("cas-register/good/memstress3-35") => Linearizable;
    knossos_memstress3_36_linearizable: knossos("cas-register/good/memstress3-36") => Linearizable;
    knossos_memstress3_37_linearizable: knossos("cas-register/good/memstress3-37") => Linearizable;
    knossos_memstress3_38_linearizable: knossos("cas-register/good/memstress3-38") => Linearizable;
    knossos_memstress3_39_linearizable: knossos("cas-register/good/memstress3-39") => Linearizable;
    knossos_memstress3_4_linearizable: knossos("cas-register/good/memstress3-4") => Linearizable;
    knossos_memstress3_40_linearizable: knossos("cas-register/good/memstress3-40") => Linearizable;
    knossos_memstress3_41_linearizable: knossos("cas-register/good/memstress3-41") => Linearizable;
    knossos_memstress3_42_linearizable: knossos("cas-register/good/memstress3-42") => Linearizable;
    knossos_memstress3_43_linearizable: knossos("cas-register/good/memstress3-43") => Linearizable;
    knossos_memstress3_44_linearizable: knossos("cas-register/good/memstress3-44") => Linearizable;
    knossos_memstress3_45_linearizable: knossos("cas-register/good/memstress3-45") => Linearizable;
    knossos_memstress3_46_linearizable: knossos("cas-register/good/memstress3-46") => Linearizable;
    knossos_memstress3_47_linearizable: knossos("cas-register/good/memstress3-47") => Linearizable;
    knossos_memstress3_48_linearizable: knossos("cas-register/good/memstress3-48") => Linearizable;
    knossos_memstress3_49_linearizable: knossos("cas-register/good/memstress3-49") => Linearizable;
    knossos_memstress3_5_linearizable: knossos("cas-register/good/memstress3-5") => Linearizable;
    knossos_memstress3_50_linearizable: knossos("cas-register/good/memstress3-50") => Linearizable;
    knossos_memstress3_51_linearizable: knossos("cas-register/good/memstress3-51") => Linearizable;
    knossos_memstress3_52_linearizable: knossos("cas-register/good/memstress3-52") => Linearizable;
    knossos_memstress3_53_linearizable: knossos("cas-register/good/memstress3-53") => Linearizable;
    knossos_memstress3_54_linearizable: knossos("cas-register/good/memstress3-54") => Linearizable;
    knossos_memstress3_55_linearizable: knossos("cas-register/good/memstress3-55") => Linearizable;
    knossos_memstress3_56_linearizable: knossos("cas-register/good/memstress3-56") => Linearizable;
    knossos_memstress3_57_linearizable: knossos("cas-register/good/memstress3-57") => Linearizable;
    knossos_memstress3_58_linearizable: knossos("cas-register/good/memstress3-58") => Linearizable;
    knossos_memstress3_59_linearizable: knossos("cas-register/good/memstress3-59") => Linearizable;
    knossos_memstress3_6_linearizable: knossos("cas-register/good/memstress3-6") => Linearizable;
    knossos_memstress3_60_linearizable: knossos("cas-register/good/memstress3-60") => Linearizable;
    knossos_memstress3_61_linearizable: knossos("cas-register/good/memstress3-61") => Linearizable;
    knossos_memstress3_62_linearizable: knossos("cas-register/good/memstress3-62") => Linearizable;
    knossos_memstress3_63_linearizable: knossos("cas-register/good/memstress3-63") => Linearizable;
    knossos_memstress3_64_linearizable: knossos("cas-register/good/memstress3-64") => Linearizable;
    knossos_memstress3_65_linearizable: knossos("cas-register/good/memstress3-65") => Linearizable;
    knossos_memstress3_66_linearizable: knossos("cas-register/good/memstress3-66") => Linearizable;
    knossos_memstress3_67_linearizable: knossos("cas-register/good/memstress3-67") => Linearizable;
    knossos_memstress3_68_linearizable: knossos("cas-register/good/memstress3-68") => Linearizable;
    knossos_memstress3_69_linearizable: knossos("cas-register/good/memstress3-69") => Linearizable;
    knossos_memstress3_7_linearizable: knossos("cas-register/good/memstress3-7") => Linearizable;
    knossos_memstress3_70_linearizable: knossos("cas-register/good/memstress3-70") => Linearizable;
    knossos_memstress3_71_linearizable: knossos("cas-register/good/memstress3-71") => Linearizable;
    knossos_memstress3_72_linearizable: knossos("cas-register/good/memstress3-72") => Linearizable;
    knossos_memstress3_73_linearizable: knossos("cas-register/good/memstress3-73") => Linearizable;
    knossos_memstress3_74_linearizable: knossos("cas-register/good/memstress3-74") => Linearizable;
    knossos_memstress3_75_linearizable: knossos("cas-register/good/memstress3-75") => Linearizable;
    knossos_memstress3_76_linearizable: knossos("cas-register/good/memstress3-76") => Linearizable;
    knossos_memstress3_77_linearizable: knossos("cas-register/good/memstress3-77") => Linearizable;
    knossos_memstress3_78_linearizable: knossos("cas-register/good/memstress3-78") => Linearizable;
    knossos_memstress3_79_linearizable: knossos("cas-register/good/memstress3-79") => Linearizable;
    knossos_memstress3_8_linearizable: knossos("cas-register/good/memstress3-8") => Linearizable;
    knossos_memstress3_80_linearizable: knossos("cas-register/good/memstress3-80") => Linearizable;
    knossos_memstress3_81_linearizable: knossos("cas-register/good/memstress3-81") => Linearizable;
    knossos_memstress3_82_linearizable: knossos("cas-register/good/memstress3-82") => Linearizable;
    knossos_memstress3_83_linearizable: knossos("cas-register/good/memstress3-83") => Linearizable;
    knossos_memstress3_84_linearizable: knossos("cas-register/good/memstress3-84") => Linearizable;
    knossos_memstress3_85_linearizable: knossos("cas-register/good/memstress3-85") => Linearizable;
    knossos_memstress3_86_linearizable: knossos("cas-register/good/memstress3-86") => Linearizable;
    knossos_memstress3_87_linearizable: knossos("cas-register/good/memstress3-87") => Linearizable;
    knossos_memstress3_88_linearizable: knossos("cas-register/good/memstress3-88") => Linearizable;
    knossos_memstress3_89_linearizable: knossos("cas-register/good/memstress3-89") => Linearizable;
    knossos_memstress3_9_linearizable: knossos("cas-register/good/memstress3-9") => Linearizable;
    knossos_memstress3_90_linearizable: knossos("cas-register/good/memstress3-90") => Linearizable;
    knossos_memstress3_91_linearizable: knossos("cas-register/good/memstress3-91") => Linearizable;
    knossos_memstress3_92_linearizable: knossos("cas-register/good/memstress3-92") => Linearizable;
    knossos_memstress3_93_linearizable: knossos("cas-register/good/memstress3-93") => Linearizable;
    knossos_memstress3_94_linearizable: knossos("cas-register/good/memstress3-94") => Linearizable;
    knossos_memstress3_95_linearizable: knossos("cas-register/good/memstress3-95") => Linearizable;
    knossos_memstress3_96_linearizable: knossos("cas-register/good/memstress3-96") => Linearizable;
    knossos_memstress3_97_linearizable: knossos("cas-register/good/memstress3-97") => Linearizable;
    knossos_memstress3_98_linearizable: knossos("cas-register/good/memstress3-98") => Linearizable;
    knossos_memstress3_99_linearizable: knossos("cas-register/good/memstress3-99") => Linearizable;
    knossos_mongodb_v0_ack_rollback_linearizable: knossos("cas-register/good/mongodb-v0-ack-rollback-") => Linearizable;
    knossos_mongodb_v0_ack_rollback_0_linearizable: knossos("cas-register/good/mongodb-v0-ack-rollback-0") => Linearizable;
    knossos_mongodb_v0_ack_rollback_1_linearizable: knossos("cas-register/good/mongodb-v0-ack-rollback-1") => Linearizable;
    knossos_mongodb_v0_ack_rollback_10_linearizable: knossos("cas-register/good/mongodb-v0-ack-rollback-10") => Linearizable;
    knossos_mongodb_v0_ack_rollback_11_linearizable: knossos("cas-register/good/mongodb-v0-ack-rollback-11") => Linearizable;
    knossos_mongodb_v0_ack_rollback_2_linearizable: knossos("cas-register/good/mongodb-v0-ack-rollback-2") => Linearizable;
    knossos_mongodb_v0_ack_rollback_3_linearizable: knossos("cas-register/good/mongodb-v0-ack-rollback-3") => Linearizable;
    knossos_mongodb_v0_ack_rollback_4_linearizable: knossos("cas-register/good/mongodb-v0-ack-rollback-4") => Linearizable;
    knossos_mongodb_v0_ack_rollback_5_linearizable: knossos("cas-register/good/mongodb-v0-ack-rollback-5") => Linearizable;
    knossos_mongodb_v0_ack_rollback_7_linearizable: knossos("cas-register/good/mongodb-v0-ack-rollback-7") => Linearizable;
    knossos_mongodb_v0_ack_rollback_8_linearizable: knossos("cas-register/good/mongodb-v0-ack-rollback-8") => Linearizable;
    knossos_mongodb_v0_ack_rollback_9_linearizable: knossos("cas-register/good/mongodb-v0-ack-rollback-9") => Linearizable;
    knossos_bad_analysis_not_linearizable: knossos("cas-register/bad/bad-analysis") => NotLinearizable;
    knossos_cas_failure_not_linearizable: knossos("cas-register/bad/cas-failure") => NotLinearizable;
    knossos_immediate_failure_not_linearizable: knossos("cas-register/bad/immediate-failure") => NotLinearizable;
    knossos_mongodb_v0_ack_rollback_6_not_linearizable: knossos("cas-register/bad/mongodb-v0-ack-rollback-6") => NotLinearizable;
    knossos_rethink_fail_minimal_not_linearizable: knossos("cas-register/bad/rethink-fail-minimal") => NotLinearizable;
    knossos_rethink_fail_smaller_not_linearizable: knossos("cas-register/bad/rethink-fail-smaller") => NotLinearizable;
    knossos_rethink_fail_not_linearizable: knossos("cas-register/bad/rethink-fail") => NotLinearizable;
}

#[test]
fn knossos_mutex_etcd_not_linearizable() {
    let v = verdict(
        "knossos/mutex/bad/etcd.edn",
        Format::Edn,
        ModelKind::Mutex,
        Value::Null,
        true,
    );
    assert_eq!(v, Verdict::NotLinearizable);
}

#[test]
fn knossos_multi_register_linearizable() {
    let rel = "knossos/multi-register/good/multi-register";
    let v = verdict(
        &format!("{rel}.edn"),
        Format::Edn,
        ModelKind::MultiRegister,
        json!({"x": 0, "y": 0}),
        true,
    );
    assert_eq!(v, Verdict::Linearizable);
    // The same history from y = 7: its early reads of y = 0 cannot be explained.
    let v = verdict(
        &format!("{rel}.edn"),
        Format::Edn,
        ModelKind::MultiRegister,
        json!({"x": 0, "y": 7}),
        true,
    );
    assert_eq!(v, Verdict::NotLinearizable);
}
