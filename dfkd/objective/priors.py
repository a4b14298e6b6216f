"""The priors R(x) on a synthesized batch, computed from the frozen teacher (and the input itself):
what makes a sample look like the teacher's data. Registered in `dfkd.objective.terms.TERMS` when
`dfkd.objective` is imported; the loss functions are in `dfkd.objective.losses`, the components of
`cmi` (head and memory bank) and `patch_gan` (discriminator) in `dfkd.synthesis.contrast` and
`dfkd.synthesis.mosaic`. Shapes: logits (N, K), inputs (N, C, H, W).
"""
from __future__ import annotations

from dfkd.objective import losses
from dfkd.objective.terms import Param, term

term("oh", "one-hot CE of the teacher on its arg-max (DAFL)")(
    lambda s, o, p: losses.one_hot_ce(s.t_logits))
term("ce", "CE of the teacher on the source's sampled target classes (DeepInversion)", "targets")(
    lambda s, o, p: losses.target_ce(s.t_logits, s.targets))
term("ie", "class balance: negative entropy of the mean teacher prediction (DAFL)",
     T=Param(1.0, "softmax temperature of the teacher's predictions (CuDFKD: the KD temperature, 20)", min=1e-6))(
    lambda s, o, p: losses.class_balance(s.t_logits, p["T"]))
term("act", "-mean|penultimate teacher features| (DAFL)", "features",
     layer=Param("", "the teacher module whose input is the feature ('' = its last nn.Linear; DAFL's LeNet-5: "
                     "fc1, the 120-d conv3 output)"))(
    lambda s, o, p: losses.activation_norm(s.t_features))
term("bn", "distance of batch statistics to the teacher's BN running statistics (first layer x first)",
      "bn",
      first=Param(1.0, "multiplier of the first BN layer (DeepInversion: 10)", min=0.0),
      momentum=Param(0.0, "blend the statistics with earlier batches' (Fast: 0.9); 0 = off", min=0.0, max=0.999),
      all_reduce=Param(False, "under torchrun: match the statistics of the global batch (all ranks, a "
                              "differentiable all-reduce) instead of each rank's own"))(
    lambda s, o, p: losses.bn_stat_distance(s.bn_stats, p["first"]))
term("adv_sbn", "-distance of the batch statistics to the student's BN running statistics: inputs the "
                "student's BN layers have not seen (Fast-Datafree's DeepInversion: weight bn x 0.001)",
     "student", "s_bn")(
    lambda s, o, p: -losses.bn_stat_distance(s.s_bn_stats))
term("tv_norm", "sum of the whole-batch L2 norms of the four neighbouring-pixel differences of what the teacher "
                "saw (NVlabs DeepInversion's CIFAR-10 TV prior)")(
    lambda s, o, p: losses.total_variation_norm(s.x if s.x_seen is None else s.x_seen))
term("tv_l1", "L1 total variation of the synthesized input (DeepInversion)")(
    lambda s, o, p: losses.total_variation(s.x, 1))
term("tv_l2", "squared total variation of the synthesized input (DeepInversion)")(
    lambda s, o, p: losses.total_variation(s.x, 2))
term("l2", "mean squared value of the synthesized input (DeepInversion)")(
    lambda s, o, p: losses.l2_prior(s.x))
term("t_entropy", "mean entropy of the teacher's prediction per sample: low for samples it is sure of "
                   "(MosaicKD's alignment term)")(
    lambda s, o, p: losses.prediction_entropy(s.t_logits))
term("cmi", "CMI's contrastive term: each sample's local-view embedding must pick its own global-view one "
            "(detached) among the batch's and the memory bank's, InfoNCE (Fang et al. 2021)", "contrast",
     tau=Param(0.1, "InfoNCE temperature (the authors' default 0.1; their CIFAR-10 script 0.2)", min=1e-6),
     bank=Param(40960, "raw embeddings kept in the memory bank, one round's kept batch at a time", min=0),
     negatives=Param(4096, "bank rows read (without replacement) at every step", min=1),
     dim=Param(256, "output size of the projection head", min=1),
     hidden=Param(0, "hidden width of the projection head; 0 = the embedding's width (the authors')", min=0),
     lr=Param(0.0, "Adam learning rate of the head (its own optimizer, default betas, kept across rounds); "
                   "0 = source.optim.lr", min=0.0),
     layers=Param("bn", "what embeds a sample: 'bn' = the inputs of every teacher BatchNorm layer, or "
                        "comma-separated teacher module names whose inputs do (the authors' ResNet-34: "
                        "layer1,layer2,layer3,layer4)"))(
    lambda s, o, p: losses.cmi_contrast(s.embed_local, s.embed, s.x.shape[0], p["tau"]))
term("patch_gan", "MosaicKD's local term: a patch discriminator must call every patch of the sample real, "
                  "BCE summed over patches, mean over samples (Fang et al. 2021)",
     data=Param("", "the out-of-domain images whose patches the generator imitates: a folder of image files "
                    "or a dataset (`dfkd list datasets`: its training images, labels never read)"),
     lr=Param(1e-3, "Adam learning rate of the discriminator (betas 0.5, 0.999; its own step before each "
                    "source step)", min=0.0),
     ndf=Param(128, "width of the discriminator's first layer", min=1))(
    lambda s, o, p: o.components["mosaic"].fool(s.x_seen if s.x_seen is not None else s.x))
