// The site's search ranks the specification first: "PAUSED" lists the spec's section 4.2.7 and the
// requirements before the Python attributes of the same name.  Sphinx reads this file through the
// html_search_scorer option; the weights are Sphinx's own, plus a boost for every result of a spec page.
var Scorer = {
  score: (result) => {
    const [docname, , , , score] = result;
    return docname.startsWith("spec/") ? score + SPEC_BOOST : score;
  },
  objNameMatch: 11,
  objPartialMatch: 6,
  objPrio: {0: 15, 1: 5, 2: -5},
  objPrioDefault: 0,
  title: 15,
  partialTitle: 7,
  term: 5,
  partialTerm: 2,
};
// More than an object's name match with ordinary priority (11 + 5): any hit on a spec page comes first.
var SPEC_BOOST = 20;
